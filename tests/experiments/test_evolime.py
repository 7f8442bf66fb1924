import numpy as np
import pytest
import torch

import gradlime_utils as gu
from gradlime_utils.methods.evolime import (bitflip, evolve_explanation, ga_budget, render, tournament_select,
                                            uniform_crossover)
from gradlime_utils.data.models import ModelBundle


def test_crossover_and_mutation_preserve_length_and_binary_values():
    rng = np.random.default_rng(0)
    a, b = np.zeros(50, np.uint8), np.ones(50, np.uint8)
    c, d = uniform_crossover(a, b, rng)
    assert c.shape == d.shape == (50,) and set(np.unique(c)) <= {0, 1}
    np.testing.assert_array_equal(c + d, np.ones(50))  # every gene goes to exactly one child
    assert 10 < c.sum() < 40  # about half swapped
    m = bitflip(a, 0.5, rng)
    assert m.shape == (50,) and set(np.unique(m)) <= {0, 1} and 10 < m.sum() < 40
    np.testing.assert_array_equal(bitflip(a, 0.0, rng), a)
    np.testing.assert_array_equal(bitflip(a, 1.0, rng), b)
    with pytest.raises(ValueError, match="same length"):
        uniform_crossover(a, b[:10], rng)
    with pytest.raises(ValueError, match="mutation rate"):
        bitflip(a, 1.5, rng)


def test_tournament_picks_the_fittest_contestant():
    rng = np.random.default_rng(1)
    pop = np.eye(5, dtype=np.uint8)
    fit = np.array([0.1, 0.9, 0.2, 0.3, 0.4])
    picks = [int(np.argmax(tournament_select(pop, fit, k=20, rng=rng))) for _ in range(50)]
    assert picks.count(1) > 45  # drawn with probability 1 - 0.8^20, and it then always wins
    assert all(np.argmax(tournament_select(pop, fit, 1, rng)) in range(5) for _ in range(5))


class KeepLeftHalf(torch.nn.Module):
    """p(class 1) rises with the brightness of the image's left half: a known optimum for the GA."""

    def forward(self, x):
        left = x[:, :, :, : x.shape[-1] // 2].mean(dim=(1, 2, 3))
        right = x[:, :, :, x.shape[-1] // 2:].mean(dim=(1, 2, 3))
        return torch.stack([right * 4, left * 4], dim=1)


@pytest.fixture
def toy():
    bundle = ModelBundle(name="toy", model=KeepLeftHalf(), class_names=["r", "l"], input_size=16, cam_layers=[],
                         mean=(0, 0, 0), std=(1, 1, 1), device=torch.device("cpu"))
    image = np.full((16, 16, 3), 255, np.uint8)
    segments = gu.segment_image(image, "grid", cell_size=4)  # 16 superpixels, columns 0-1 on the left
    return bundle, image, segments


def test_fitness_equals_the_direct_model_call_on_the_masked_image(toy):
    bundle, image, segments = toy
    res = evolve_explanation(bundle, image, segments, target=1, population=6, generations=3, seed=0)
    masked = np.where(res.mask(segments)[..., None], image, 0).astype(np.uint8)
    assert res.best_fitness == pytest.approx(float(bundle.predict_proba(masked[None])[0, 1]))
    np.testing.assert_array_equal(render(image, segments, res.best[None])[0], masked)


def test_elitism_never_loses_the_best_fitness_and_finds_the_optimum(toy):
    bundle, image, segments = toy
    res = evolve_explanation(bundle, image, segments, target=1, population=20, generations=30, seed=3)
    assert all(b2 >= b1 - 1e-12 for b1, b2 in zip(res.history_best, res.history_best[1:]))
    assert res.queries == 20 + 30 * 19
    cols = np.arange(16) % 4
    assert res.best[cols < 2].all() and not res.best[cols >= 2].any()  # exactly the left half


def test_bad_inputs(toy):
    bundle, image, segments = toy
    with pytest.raises(ValueError, match="population must be"):
        evolve_explanation(bundle, image, segments, population=1)
    with pytest.raises(ValueError, match="elitism"):
        evolve_explanation(bundle, image, segments, population=4, elitism=4)
    with pytest.raises(ValueError, match="target must be"):
        evolve_explanation(bundle, image, segments, target=5)
    with pytest.raises(ValueError, match="crossover_rate"):
        evolve_explanation(bundle, image, segments, crossover_rate=2)


def test_null_counts_of_the_matched_null_rows():
    from gradlime_utils.experiments.ch05_evolime import null_counts

    rows = [{"gain_over_random": 0.05, "gain_p": 0.001, "random_beats_full": 0.9},
            {"gain_over_random": -0.02, "gain_p": 0.001, "random_beats_full": 0.5},   # beyond, but against the GA
            {"gain_over_random": 0.01, "gain_p": 0.06, "random_beats_full": 0.2},     # not beyond at 5%
            {"gain_over_random": 0.01, "random_beats_full": 0.7}]                     # an old row: no p-value
    assert null_counts(rows) == {"beats": 1, "random_beats_full": 2, "n": 4}


def test_the_chapters_figures_show_the_run_they_are_given(toy, tmp_path):
    """E-1's grid and the slider's progress view draw the run's own masks, fitness and query counts."""
    import matplotlib
    import matplotlib.pyplot as plt

    from gradlime_utils.experiments import ch05_evolime as evolime
    matplotlib.use("Agg")
    bundle, image, segments = toy
    res = evolve_explanation(bundle, image, segments, target=1, population=6, generations=4, seed=0)
    hood = gu.sample_neighborhood(bundle, image, num_samples=30, seed=0, segments=segments)
    lime_exp = gu.explain_lime(hood, 1)
    fig = evolime.plot_examples({("toy", "white"): (image, segments, res, lime_exp)}, "E-1", tmp_path / "E-1.png")
    assert fig.axes[2].get_title() == f"EvoLIME: p = {res.best_fitness:.2f}" and (tmp_path / "E-1.pdf").is_file()
    np.testing.assert_array_equal(fig.axes[2].images[0].get_array(), render(image, segments, res.best[None])[0])
    fig = evolime.plot_progress(res, image, segments, 2)
    assert fig.axes[0].get_title() == f"{ga_budget(6, 2)} queries" == "16 queries"
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), res.history_best[:3])
    kept = res.history_best_chromosomes[2]
    np.testing.assert_array_equal(fig.axes[1].images[0].get_array(), render(image, segments, kept[None])[0])
    plt.close("all")
