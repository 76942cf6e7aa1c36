"""The notebooks run top to bottom on the bundled data, and are committed without outputs."""

from __future__ import annotations

import re
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
    "04-fleet-calibration.ipynb": ["bad rollouts", "rolloutlab"],
}
#: Notebooks whose charts render with no network (SVG from vl-convert, no CDN script).
OFFLINE = {
    "01-live-canary.ipynb",
    "02-post-mortem.ipynb",
    "03-ab-report.ipynb",
    "04-fleet-calibration.ipynb",
}
#: An address in HTML or SVG output other than an XML namespace: JavaScript (altair's
#: default renderer loads vega from a CDN) or anything else a browser would fetch.
REMOTE = re.compile(r"(?:https?:)?//(?!www\.w3\.org/)[\w-]+(?:\.[\w-]+)*\.[a-z]{2,}\b")
#: What a browser fetches from: scripts, and src/href/url(...) attributes (an address shown as
#: text in a table, such as a post-mortem link, is data, not a load).
LOADED = re.compile(r"<script\b.*?</script>|\b(?:src|href)\s*=\s*[\"'][^\"']*|url\([^)]*", re.S)
RICH = ("text/html", "image/svg+xml")


def _text(output, kinds=("text/plain", *RICH)) -> str:
    """What an output shows as ``kinds`` (streams count as text/plain), joined."""
    if output.output_type == "stream":
        return output.text if "text/plain" in kinds else ""
    data = output.get("data", {})
    return "\n".join(str(data[k]) for k in kinds if k in data)


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
    text = "\n".join(_text(out) for out in displayed)
    for shown in SHOWN.get(path.name, ()):
        assert shown in text, f"{path.name} did not show {shown!r}"
    if path.name in OFFLINE:
        rich = "\n".join(_text(out, RICH) for out in displayed)
        remote = REMOTE.search("\n".join(m[0] for m in LOADED.finditer(rich)))
        assert not remote, f"the output loads {remote[0]!r} from the network"
        assert "<svg" in rich, "no chart was drawn"
    if path.name == "01-live-canary.ipynb":  # a live story: evidence accumulates, then a decision
        ticks = re.search(r"decided rollback after (\d+) ticks of evidence", text)
        assert ticks and int(ticks[1]) >= 3, "the decision came before the evidence accumulated"
