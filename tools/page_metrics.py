"""What a reader sees of each built page, measured in headless Chromium at 1280x900.

    python tools/page_metrics.py _build/html --out metrics.json

Per page of the table of contents: its height in screens (900 px), how far down its first
section heading starts, the share of the page's height taken by code inputs (visible ones:
``hide-input`` cells count as their collapsed toggle), by figures and by outputs, and the
number of figures and of admonitions. The review of the book (``reviews/book-2026-12.md``)
measured the same things; a closing note compares builds with it. Needs Playwright and Chromium
(``$CHROMIUM`` or ``chromium`` on PATH), as the browser tests do.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import threading
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
VIEWPORT = {"width": 1280, "height": 900}

_MEASURE = """() => {
  const article = document.querySelector('article') || document.body;
  const top = (e) => e.getBoundingClientRect().top + window.scrollY;
  const height = (sel) => [...article.querySelectorAll(sel)]
    .reduce((sum, e) => sum + e.getBoundingClientRect().height, 0);
  const h2 = article.querySelector('h2');
  const page = document.documentElement.scrollHeight;
  return {
    screens: page / 900,
    first_section_px: h2 ? Math.round(top(h2)) : null,
    code_input_share: height('div.cell_input') / page,
    output_share: height('div.cell_output') / page,
    figure_share: height('img') / page,
    figures: article.querySelectorAll('img').length,
    admonitions: article.querySelectorAll('div.admonition').length,
  };
}"""


def docnames() -> list[str]:
    """The book's pages in reading order (``_toc.yml``)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    names = [toc["root"]]
    for part in toc.get("parts", []):
        names += [entry["file"] for entry in part.get("chapters", []) if "file" in entry]
    return names


def measure(site: Path) -> dict[str, dict]:
    """The metrics of every page of the book built into ``site``."""
    from playwright.sync_api import sync_playwright

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}/"
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium")
    metrics: dict[str, dict] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport=VIEWPORT)
            page.route(
                "**/*", lambda r: r.continue_() if r.request.url.startswith(base) else r.abort()
            )
            for name in docnames():
                page.goto(f"{base}{name}.html", wait_until="load")
                values = page.evaluate(_MEASURE)
                metrics[name] = {
                    k: round(v, 3) if isinstance(v, float) else v for k, v in values.items()
                }
            browser.close()
    finally:
        httpd.shutdown()
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="a built book (_build/html)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    metrics = measure(args.site)
    args.out.write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
    for name, m in metrics.items():
        print(
            f"{name:40} {m['screens']:5.1f} screens, first section {m['first_section_px']} px, "
            f"code {m['code_input_share']:.0%}, figures {m['figures']} ({m['figure_share']:.0%})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
