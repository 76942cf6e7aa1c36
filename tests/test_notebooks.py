"""The notebooks run top to bottom on the bundled data, and are committed without outputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: What each notebook must have shown: the story it tells actually happened.
SHOWN = {
    # the panel moved the local demo's weights: a confirmed step to 10%, then the rollback
    "01-live-canary.ipynb": ['rollout.set_weight(10, reason="manual: panel")', "100/0"],
    "02-post-mortem.ipynb": ["rolloutlab rolls back at", "flagger rolls back at"],
    "03-ab-report.ipynb": ["B raises conversion by"],
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name}: strip outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_runs_top_to_bottom(path, tmp_path):
    # run a copy beside a link to data/, so the notebook's files land in tmp_path
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "data").symlink_to(ROOT / "data")
    copy = tmp_path / "notebooks" / path.name
    shutil.copy(path, copy)
    nb = nbformat.read(copy, as_version=4)
    client = NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(copy.parent)}}
    )
    client.execute()  # raises CellExecutionError naming the cell on any failure
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]
    assert not errors
    displayed = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert displayed, "the notebook showed nothing"
