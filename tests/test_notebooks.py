"""Every notebook in notebooks/ runs from top to bottom and shows at least one picture.

The notebooks are jupytext percent-format `.py` files, the source of truth (no `.ipynb` with
outputs in git). Each is converted with jupytext and executed by nbclient in a kernel of this
very Python (a kernelspec written to a temporary JUPYTER_PATH, so the venv's cnnscope and torch
are used whatever kernels the machine has installed). The notebooks that need a trained model
read its folder from CNNSCOPE_MODEL; the test sets it to the suite's small model
(`small_model_dir`, trained on real MNIST when the session starts), so the notebooks never need
the default model in ~/.cache, and CNNSCOPE_HOME is the session's folder (conftest). The kernel
runs torch on one thread (OMP_NUM_THREADS=1), as the suite's own training does: on a shared
2-core machine two threads make small OIP batches several times slower.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL = "cnnscope-tests"


@pytest.fixture(scope="module")
def kernel_path(tmp_path_factory):
    """A JUPYTER_PATH folder holding one kernelspec that starts this interpreter's ipykernel."""
    pytest.importorskip("ipykernel")
    folder = tmp_path_factory.mktemp("jupyter")
    spec = folder / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "cnnscope tests",
                                                  "language": "python"}))
    return folder


def test_every_notebook_is_a_percent_script():
    paths = sorted(NOTEBOOKS.glob("*.py"))
    assert len(paths) >= 7  # one per article theme and "your own model"
    for path in paths:
        text = path.read_text()
        assert "# %%" in text and "import cnnscope" in text, path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.py")), ids=lambda p: p.stem)
def test_notebook_runs_and_shows_pictures(path, kernel_path, small_model_dir, tmp_path, monkeypatch):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_path))
    monkeypatch.setenv("CNNSCOPE_MODEL", str(small_model_dir))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = jupytext.read(path)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name=KERNEL,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # a failing cell raises CellExecutionError with its traceback
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    pictures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert pictures, f"{path.name} shows no picture"
    assert all(o["data"]["image/png"] for o in pictures)
