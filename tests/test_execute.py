"""``make execute`` (tools/execute_notebooks.py) is repeatable: a second run changes no byte."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import nbformat
import pytest
from support import EXECUTE, KERNELSPEC, execute_notebook, probe_notebook


def _load_tool():
    spec = importlib.util.spec_from_file_location("execute_notebooks", EXECUTE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_clean_drops_volatile_metadata() -> None:
    tool = _load_tool()
    nb = probe_notebook()
    nb.metadata["widgets"] = {"state": {}}
    nb.metadata["papermill"] = {"start_time": "2026-01-01T00:00:00"}
    nb.metadata["kernelspec"] = {"name": "myenv", "display_name": "My env"}
    nb.cells[1].metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00.1Z"}
    nb.cells[1].metadata["scrolled"] = True
    nb.cells[1].metadata["tags"] = ["keep-me"]
    tool.clean(nb)
    assert "widgets" not in nb.metadata and "papermill" not in nb.metadata
    assert nb.metadata["kernelspec"] == KERNELSPEC
    assert nb.cells[1].metadata == {"tags": ["keep-me"]}


def test_clean_merges_consecutive_prints_of_one_stream() -> None:
    tool = _load_tool()
    nb = probe_notebook()
    out = nbformat.v4.new_output
    nb.cells[1].outputs = [
        out("stream", name="stdout", text="a\n"),
        out("stream", name="stdout", text=["b\n", "c\n"]),
        out("stream", name="stderr", text="warning\n"),
        out("stream", name="stdout", text="d\n"),
        out("execute_result", data={"text/plain": "1"}, execution_count=1),
        out("stream", name="stdout", text="e\n"),
    ]
    tool.clean(nb)
    assert [(o.output_type, o.get("name"), o.get("text")) for o in nb.cells[1].outputs] == [
        ("stream", "stdout", "a\nb\nc\n"),
        ("stream", "stderr", "warning\n"),
        ("stream", "stdout", "d\n"),
        ("execute_result", None, None),
        ("stream", "stdout", "e\n"),
    ]


@pytest.mark.slow
def test_executing_twice_changes_no_byte(tmp_path: Path) -> None:
    if not os.environ.get("REPRODL_DATA"):
        pytest.skip("no MNIST folder: set REPRODL_DATA")
    nb = probe_notebook(steps=20, timing=False)  # a clock reading would change
    nb.cells.append(
        nbformat.v4.new_code_cell(
            'from reprodl import plots\n\nfig = plots.loss_curves({"softmax": record.losses})'
        )
    )
    path = tmp_path / "twice.ipynb"
    nbformat.write(nb, path)

    execute_notebook(path)
    first = path.read_bytes()
    execute_notebook(path)
    second = path.read_bytes()
    assert first == second, "a second execution changed the notebook"

    stored = json.loads(first)
    assert stored["metadata"]["kernelspec"] == KERNELSPEC
    assert "widgets" not in stored["metadata"]
    code = [c for c in stored["cells"] if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    for cell in code:
        assert "execution" not in cell["metadata"], cell["metadata"]
    # The figure is stored as PNG, and its bytes did not change either (compared above).
    assert any("image/png" in o.get("data", {}) for o in code[-1]["outputs"]), code[-1]
