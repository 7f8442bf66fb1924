"""What the tests of the run tools share: toy chapters for reproduce and sweep to run."""
import nbformat
import pytest


def _write_chapter(folder, name, body, extra_parameters=""):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "quick"\ndevice = "auto"\nseed = 0\noutput_dir = "out"\nscale = 1'
                                       + extra_parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / f"{name}.ipynb")


@pytest.fixture
def write_chapter():
    """``write_chapter(folder, name, body, extra_parameters="")`` writes ``folder/name.ipynb``: a papermill parameters
    cell (profile, device, seed, output_dir, scale, plus ``extra_parameters``) and one code cell ``body``."""
    return _write_chapter


@pytest.fixture
def toy_book(tmp_path, write_chapter):
    """``toy_book({name: body, ...})`` writes those toy chapters into ``tmp_path/notebooks`` and returns that folder
    with the results folder a run should write to."""
    def make(chapters: dict) -> tuple:
        notebooks = tmp_path / "notebooks"
        notebooks.mkdir(exist_ok=True)
        for name, body in chapters.items():
            write_chapter(notebooks, name, body)
        return notebooks, tmp_path / "results"
    return make
