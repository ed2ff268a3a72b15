"""Every notebook in notebooks/ runs top to bottom, offline, as a reader would run it."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
#: Items CI gives a notebook whose every item costs minutes (04: five methods, about 25 local calls a
#: puzzle); the others get 3.
CI_ITEMS = {"04-debate-and-tree-of-thoughts.ipynb": "2"}


@pytest.mark.slow
@pytest.mark.timeout(1500)  # the local model on 2 cores; a cell alone may take up to 900 s
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_the_notebook_runs_top_to_bottom(path, monkeypatch):
    # CI keeps experiments tiny; a reader gets the notebook's own default.
    items = os.environ.get("MOA_LAB_NOTEBOOK_ITEMS", CI_ITEMS.get(path.name, "3"))
    monkeypatch.setenv("MOA_LAB_NOTEBOOK_ITEMS", items)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert errors == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_no_markdown_dollar_is_read_as_math(path):
    """JupyterLab typesets $...$ in markdown: "$1.10 ... $0.05" would turn into a formula."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            assert not re.search(r"(?<!\\)\$", cell.source), cell.source[:200]
