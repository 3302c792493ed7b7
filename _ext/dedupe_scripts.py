"""Drop duplicate <script> entries from every HTML page.

Under Sphinx 7.4, sphinx-thebe registers its inline configuration script (``const THEBE_JS_URL =
...``) twice, so the browser throws ``THEBE_JS_URL has already been declared`` on every page. This
extension keeps the first of any scripts with the same source and attributes.
"""

from __future__ import annotations

from typing import Any


def _key(script: Any) -> tuple:
    # An inline script's filename is None or "" depending on how it was added: the same script.
    attributes = getattr(script, "attributes", {}) or {}
    return (
        getattr(script, "filename", str(script)) or "",
        tuple(sorted((str(k), str(v)) for k, v in attributes.items())),
    )


def drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    """``html-page-context`` handler: remove repeated entries from ``script_files``."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app) -> dict[str, Any]:
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
