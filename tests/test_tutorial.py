"""docs/tutorial.ipynb: committed without outputs, and every cell runs (on a short setting
passed through environment variables, not by editing the notebook)."""

import json
import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "docs" / "tutorial.ipynb"


def test_the_notebook_is_committed_without_outputs():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code and all(not c["outputs"] and c["execution_count"] is None for c in code)


@pytest.mark.slow
def test_every_cell_runs_on_a_short_setting(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("GANKIT_TUTORIAL_ITERATIONS", "20")
    # a budget no start-up can use up, however busy the machine (its speed measurement takes
    # 2.5% of it: 3 s here), and a stop 4 s into training
    monkeypatch.setenv("GANKIT_TUTORIAL_BUDGET", "120")
    monkeypatch.setenv("GANKIT_TUTORIAL_STOP_AFTER", "4")
    monkeypatch.setenv("GANKIT_TUTORIAL_N", "200")
    monkeypatch.setenv("GANKIT_TUTORIAL_RUNS", str(tmp_path / "runs"))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute(env=dict(os.environ))  # raises CellExecutionError on any cell's error
    outputs = json.dumps([c.get("outputs", []) for c in notebook.cells])
    assert "modes" not in outputs and "FID" in outputs and "conditional accuracy" in outputs
    assert (tmp_path / "runs" / "compare" / "compare.html").is_file()
