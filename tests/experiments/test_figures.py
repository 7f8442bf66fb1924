"""Figures that show what the prose says (issue 25): G-3's layers differ where their coefficients differ, class
names in titles, and one colour map per quantity across the package and the chapters."""
from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib
import numpy as np
import pytest

import gradlime_utils as gu
from gradlime_utils.experiments import ch02_gradlime as gl
from gradlime_utils.methods import neighborhood
from gradlime_utils.plotting import CMAPS

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[2]


def _weights_panels(fig):
    return [ax for ax in fig.axes if ax.get_title() == "GradLIME b per superpixel"]


def test_g3_weight_panels_differ_between_layers_whose_coefficients_differ(mnist_bundle):
    digit = gu.load_binary_dataset("mnist_3_vs_8", "test", max_per_class=1).images()[0]
    segments = neighborhood.segment_image(digit, "grid", cell_size=7)
    hood = gu.sample_neighborhood(mnist_bundle, digit, num_samples=200, seed=0, segments=segments, progress=False)
    label = hood.top_label
    rng = np.random.default_rng(0)
    shallow, deep = rng.random((28, 28)), np.zeros((28, 28))
    deep[7:21, 7:21] = 1.0  # a prior on the centre only
    lime = gu.explain_lime(hood, label)
    rows = [gl.Comparison(hood.image, name, label, lime, gu.explain_gradlime(hood, label, cam))
            for name, cam in (("shallow", shallow), ("deep", deep), ("deep again", deep.copy()))]
    assert not np.allclose(rows[0].gradlime.coef, rows[1].gradlime.coef)
    fig = gl.plot_comparison(rows, weights=True)
    panels = _weights_panels(fig)
    assert len(panels) == 3
    rgba = [p.images[0].to_rgba(p.images[0].get_array()) for p in panels]
    assert np.abs(rgba[0] - rgba[1]).max() > 0.1  # visibly different colours where the coefficients differ
    np.testing.assert_array_equal(rgba[1], rgba[2])  # the same coefficients draw the same panel
    limits = {p.images[0].get_clim() for p in panels}
    assert len(limits) == 1  # one shared signed scale, so rows compare
    assert all(p.images[0].get_cmap().name == CMAPS["signed"] for p in panels)
    matplotlib.pyplot.close(fig)
    without = gl.plot_comparison(rows)
    assert not _weights_panels(without)
    matplotlib.pyplot.close(without)


def _sources():
    for path in sorted((ROOT / "gradlime_utils").rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), path.read_text()
    for path in [*sorted((ROOT / "notebooks").glob("*.ipynb")), *sorted((ROOT / "book").glob("*.ipynb"))]:
        cells = json.loads(path.read_text())["cells"]
        yield path.relative_to(ROOT).as_posix(), "\n".join("".join(c["source"]) for c in cells
                                                          if c["cell_type"] == "code")


def test_one_colour_map_per_quantity_is_set_in_one_place():
    """No colour map is named anywhere but in plotting.CMAPS: every figure of the package and of the chapters takes
    its map from there (`cmap=CMAPS["map"]`, `gu.CMAPS["signed"]`, ...)."""
    literal = re.compile(r"""cmap["']?\s*[=:]\s*["'][A-Za-z_]+["']""")
    found = []
    for where, text in _sources():
        if where == "gradlime_utils/plotting.py":  # the one place: CMAPS itself
            head, rest = text.split("CMAPS = {", 1)
            text = head + rest.split("}", 1)[1]
        found += [f"{where}: {m}" for m in literal.findall(text)]
    assert not found, found
    assert len(set(CMAPS.values())) == len(CMAPS)  # one map per quantity, and no map shared by two quantities
    assert set(CMAPS.values()) <= set(matplotlib.colormaps)


def test_titles_name_the_class_not_its_index(mnist_bundle):
    digit = gu.load_binary_dataset("mnist_3_vs_8", "test", max_per_class=1).images()[0]
    hood = gu.sample_neighborhood(mnist_bundle, digit, num_samples=50, seed=0,
                                  segments=neighborhood.segment_image(digit, "grid", cell_size=7), progress=False)
    rows = gl.compare_images(mnist_bundle, {"digit": hood})
    name = mnist_bundle.class_names[hood.top_label]
    assert rows[0].title.endswith(name) and not re.search(r":\s*\d+$", rows[0].title)


@pytest.mark.parametrize("chapter, marker", [
    ("03_gad", "ch03_gad.null_comparison_frame(rows)"),      # 2 x 20 rows of real - null
    ("03_gad", "ch03_gad.rs_paired_frame("),                 # 80 rows of paired RS
    ("03_gad", "The same tables under Figure 4's rule"),     # the second hull rule's tables
    ("04_evaluation", "(bench_rows,) = ch04_evaluation.chance_tables("),  # 14 methods x 8 metrics on the benchmark
])
def test_the_long_tables_are_folded_under_their_summary(chapter, marker):
    cells = json.loads((ROOT / "notebooks" / f"{chapter}.ipynb").read_text())["cells"]
    cell = next(c for c in cells if c["cell_type"] == "code" and marker in "".join(c["source"]))
    assert "hide-output" in cell["metadata"].get("tags", [])


def test_figure_6_draws_the_columns_asked_for_and_refuses_others():
    from gradlime_utils.methods.gad import GadMaps
    from gradlime_utils.experiments.ch03_gad import plot_hull_grid

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (6, 28, 28, 3), dtype=np.uint8)
    maps = {m: GadMaps(m, "min", [0.0, 2.0], rng.random((2, 6, 28, 28)), rng.random((6, 28, 28)))
            for m in ("saliency", "integrated_gradients")}
    labels, names = [0, 0, 0, 1, 1, 1], ["three", "eight"]
    full = plot_hull_grid(images, maps, labels, names)
    page = plot_hull_grid(images, maps, labels, names, columns=[0, 3])
    assert len(full.axes) == 2 * 6 and len(page.axes) == 2 * 2
    assert [ax.get_title() for ax in page.axes[:2]] == ["three", "eight"]
    with pytest.raises(ValueError, match="columns must index the 6 images"):
        plot_hull_grid(images, maps, labels, names, columns=[7])
    matplotlib.pyplot.close("all")


def test_surrogate_maps_name_what_they_keep_per_image(mnist_bundle):
    """Chapter 04 reads `d.neighborhood` and `d.cam`, never `d[0]` / `d[1]` of a tuple."""
    from gradlime_utils.experiments import ch04_evaluation as ev
    digits = gu.load_binary_dataset("mnist_3_vs_8", "test", max_per_class=1).images()
    labels = mnist_bundle.predict_proba(digits).argmax(1)
    maps, details = ev.surrogate_maps(mnist_bundle, digits, labels, num_samples=30, segmentation="grid",
                                      cell_size=7)
    assert len(details) == len(digits) and all(isinstance(d, ev.SurrogateDetail) for d in details)
    assert details[0].neighborhood.segments.shape == digits[0].shape[:2]
    assert details[0].cam.shape == digits[0].shape[:2]
    assert set(details[0].explanations) == {"LIME", "GradLIME (feature)", "GradLIME (importance)"}


def test_table_headers_break_between_words_and_intervals_never():
    """'PointingG ame' came from letting headers break anywhere; now a CamelCase name may break only between its
    words (a zero-width space), and 'mean ± half' is one unbreakable unit."""
    from gradlime_utils.experiments import ch04_evaluation as ev
    from gradlime_utils.metrics import nulls
    from gradlime_utils.plotting import NBSP, ZWSP, header, pm

    assert header("PointingGame") == f"Pointing{ZWSP}Game" and header("IROF") == "IROF"
    assert pm(0.271, 0.25) == f"0.27{NBSP}±{NBSP}0.25" and pm(0.3, float("nan")) == "0.30"
    scores = {"LIME": {"PointingGame": np.array([0.9, 0.8, 0.85])}}
    band = nulls.ChanceBand(0.0, -0.2, 0.2, 100, values=tuple(np.linspace(-0.2, 0.2, 100)))
    bands = {"superpixel": {"PointingGame": band}, "uniform": {"PointingGame": band}}
    frame = ev.banded_frame(ev.banded_rows(scores, ["PointingGame"], bands), ["PointingGame"], bands)
    assert list(frame.columns) == [f"Pointing{ZWSP}Game"]
    assert " " not in frame.iloc[0, 0]  # no ordinary space where a cell could break
