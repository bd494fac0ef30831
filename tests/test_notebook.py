"""The exploration notebook runs top to bottom against a small model trained by the pipeline."""

from __future__ import annotations

import shutil

import nbformat
from support import PROJECT_ROOT, run_session
from nbclient import NotebookClient


def test_notebook_redraws_the_grid_from_the_catalog(project):
    run_session(project, ["cnn"], {"data.train_limit": 500, "data.test_limit": 100,
                                   "cnn.training.epochs": 1, "cnn.training.verbose": 0})
    notebook_path = project / "notebooks/explore_activations.ipynb"
    notebook_path.parent.mkdir(exist_ok=True)
    shutil.copy(PROJECT_ROOT / "notebooks/explore_activations.ipynb", notebook_path)
    notebook = nbformat.read(notebook_path, as_version=4)

    NotebookClient(notebook, timeout=180, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(notebook_path.parent)}}).execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    errors = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
    assert not errors, "\n".join(errors)
    # print() reaches the notebook as a stream, or as display data where rich renders it.
    text = "".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in outputs)
    assert text.count("[9 2 1 1 6 1 4 6 5 7") == 1  # print(test_labels[:100])
    assert "113,386" in text  # model.summary()
    figures = [o for o in outputs if o.output_type in ("display_data", "execute_result") and "image/png" in o.data]
    assert len(figures) == 4  # two activation grids, Grad-CAM for test images and for a picture file
