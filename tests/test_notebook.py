"""The exploration notebook runs top to bottom against a small model trained by the pipeline."""

from __future__ import annotations

import shutil

import nbformat
from conftest import PROJECT_ROOT, run_session
from nbclient import NotebookClient


def test_notebook_redraws_the_grid_from_the_catalog(project):
    run_session(project, ["cnn"], {"data.train_limit": 500, "data.test_limit": 100,
                                   "cnn.training.epochs": 1, "cnn.training.verbose": 0})
    notebook_path = project / "notebooks/explore_activations.ipynb"
    notebook_path.parent.mkdir(exist_ok=True)
    shutil.copy(PROJECT_ROOT / "notebooks/explore_activations.ipynb", notebook_path)
    notebook = nbformat.read(notebook_path, as_version=4)

    NotebookClient(notebook, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(notebook_path.parent)}}).execute()

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert text.count("[9 2 1 1 6 1 4 6 5 7") == 1  # print(test_labels[:100])
    assert "Total params: 113,386" in text or any("113,386" in str(o.get("data", "")) for o in outputs)
    figures = [o for o in outputs if o.output_type in ("display_data", "execute_result") and "image/png" in o.data]
    assert len(figures) == 2
