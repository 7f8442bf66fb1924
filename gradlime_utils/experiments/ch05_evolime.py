"""Chapter 05 (EvoLIME): the GA against its matched nulls (random search with the same queries, LIME's ranking
with its best k), the tables and the figures; the GA itself is :mod:`gradlime_utils.methods.evolime`."""
from __future__ import annotations

import time
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from gradlime_utils.data.models import ModelBundle
from gradlime_utils.methods.evolime import EvolutionResult, evolve_explanation, ga_budget, queries_to_reach, render
from gradlime_utils.methods.neighborhood import sample_neighborhood
from gradlime_utils.methods.surrogate import explain_lime
from gradlime_utils.metrics.nulls import ALPHA, adjust_pvalues, random_search, welch_difference
from gradlime_utils.plotting import finish_figure, show_explanation
from gradlime_utils.runtime import Size, Sizes
from gradlime_utils.validation import derive_seed

#: The chapter's scale in each profile (smoke / quick / paper); the notebook's ``sizes`` parameter overrides by name.
SIZES = Sizes(
    models=Size(["efficientnet_lite0"], ["efficientnet_lite0"], ["resnet18", "densenet121", "mobilenet_v2"],
                "networks explained"),
    photos=Size(1, None, None, "photos explained (None: all of image_names)"),
    population=Size(6, 20, 20, "GA population P"),
    generations=Size(3, 20, 20, "GA generations g"),
    runs=Size(2, 8, 110, "GA runs per image and network (paper: chosen by power; the paper's 30)"),
    draws=Size(2, 8, 110, "random searches of the GA's query budget (paper: chosen by power)"),
    lime_samples=Size(60, 1000, 1000, "LIME's N (its default 1000)"),
    populations=Size([4, 6], [10, 20, 40], [10, 20, 40], "GA populations the slider compares"),
)


def lime_best_k(bundle: ModelBundle, image: np.ndarray, explanation, target: int, hide_color=0) -> np.ndarray:
    """p(``target``) of the image keeping LIME's top-k *positive* superpixels, for k = 1 .. (number positive):
    LIME's ranking with the best k is the other matched null (one query per k)."""
    segments = explanation.segments
    order = [int(j) for j in explanation.top_superpixels(len(explanation.coef), positive_only=True)]
    if not order:
        return np.zeros(0)
    masks = np.zeros((len(order), int(segments.max()) + 1), np.uint8)
    for k in range(len(order)):
        masks[k, order[:k + 1]] = 1
    return bundle.predict_proba(render(image, segments, masks, hide_color))[:, int(target)].astype(float)


def _interval(values) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    return float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975))


def matched_null_study(bundle: ModelBundle, image: np.ndarray, segments: np.ndarray, target: int, runs: int = 10,
                       population: int = 20, generations: int = 20, lime_samples: int = 1000, draws: int = 30,
                       seed: int = 0, hide_color=0) -> tuple[dict, list[EvolutionResult], object]:
    """EvoLIME on one image beside its two matched nulls, with intervals.

    - ``runs`` GA runs (seeds ``seed ..``), each of :func:`ga_budget` queries;
    - ``draws`` independent random searches with the same budget (:func:`random_search`, fresh queries);
    - LIME's ranking with the best k (:func:`lime_best_k`) at N = the GA's budget (the first rows of the same
      neighbourhood) and at N = ``lime_samples``;
    - the GA's gain over random search (difference of the means, Welch's 95% interval and p-value: GA runs and
      random searches are two independent samples),
      the queries each GA run needed to reach the random search's median, and the time per model query of
      both methods (equal-N speed).

    Returns (row, GA results, LIME explanation at ``lime_samples``).
    """
    image = np.asarray(image)
    budget = ga_budget(population, generations)
    start = time.perf_counter()
    hood = sample_neighborhood(bundle, image, num_samples=lime_samples, seed=seed, segments=segments,
                               hide_color=hide_color, progress=False)
    lime = explain_lime(hood, int(target))
    lime_seconds = time.perf_counter() - start
    results = [evolve_explanation(bundle, image, segments, int(target), population=population, generations=generations,
                                  hide_color=hide_color, seed=derive_seed(seed, s)) for s in range(runs)]
    evolved = np.array([r.best_fitness for r in results])
    rs = random_search(bundle, image, segments, int(target), budget, draws=draws, seed=derive_seed(seed, 10_000),
                       hide_color=hide_color)
    best_k = {n: lime_best_k(bundle, image, explain_lime(hood.head(n), int(target)), int(target), hide_color)
              for n in sorted({min(budget, lime_samples), lime_samples})}
    gain = welch_difference(evolved, rs)
    reach = [queries_to_reach(r, float(np.median(rs))) for r in results]
    p_full = float(hood.predictions[0, int(target)])
    row = {
        "class": bundle.class_names[int(target)], "p_full": p_full, "runs": runs, "budget": budget,
        "evolved_mean": float(evolved.mean()), "evolved_low": _interval(evolved)[0], "evolved_high": _interval(evolved)[1],
        "evolved_std": float(evolved.std()), "improves_in": int((evolved > p_full).sum()),
        "random_mean": float(rs.mean()), "random_low": _interval(rs)[0], "random_high": _interval(rs)[1],
        "random_beats_full": float((rs > p_full).mean()), "draws": draws,
        "gain_over_random": gain.difference, "gain_low": gain.low, "gain_high": gain.high, "gain_p": gain.p,
        "ga_beats_random_median": float((evolved > np.median(rs)).mean()),
        "queries_to_random_median": [q for q in reach],
        **{f"lime_best_k_N{n}": float(v.max()) if len(v) else float("nan") for n, v in best_k.items()},
        **{f"lime_best_k_size_N{n}": int(np.argmax(v)) + 1 if len(v) else 0 for n, v in best_k.items()},
        "size_mean": float(np.mean([r.size for r in results])), "M": int(segments.max()) + 1,
        "ga_seconds": float(np.mean([r.seconds for r in results])), "lime_seconds": lime_seconds,
        "ga_ms_per_query": 1e3 * float(np.mean([r.seconds / r.queries for r in results])),
        "lime_ms_per_query": 1e3 * lime_seconds / lime_samples, "lime_queries": lime_samples,
    }
    return row, results, lime


def null_frame(rows: list[dict]):
    """The E-3/E-4 table: per image the full image, the GA (mean and 95% range over runs), random search with
    the same budget (mean and range over draws), LIME's best k at the two N, and the GA's gain over random
    search with its bootstrap interval."""
    def rng(r, key):
        return f"{r[f'{key}_mean']:.3f} [{r[f'{key}_low']:.3f}, {r[f'{key}_high']:.3f}]"

    table = []
    for r in rows:
        best = sorted(k for k in r if k.startswith("lime_best_k_N"))
        table.append({"image": r["image"], "model": r["model"], "p(full image)": f"{r['p_full']:.3f}",
                      f"GA, {r['runs']} runs": rng(r, "evolved"),
                      f"random search, {r['budget']} queries": rng(r, "random"),
                      **{f"LIME best k, N = {k.split('N')[-1]}": f"{r[k]:.3f}" for k in best},
                      "GA − random search": f"{r['gain_over_random']:+.3f} [{r['gain_low']:+.3f}, {r['gain_high']:+.3f}]"})
    return pd.DataFrame(table)


def gain_beyond_random(rows: Sequence[dict], alpha: float = ALPHA) -> list[bool]:
    """Per :func:`matched_null_study` row, whether the GA's gain over random search is beyond chance: Welch's
    p-value adjusted by Benjamini-Hochberg over all rows (one family: every image and model), at most
    ``alpha``, and a positive gain. Rows from before the p-values existed count as not beyond."""
    p = np.array([r.get("gain_p", np.nan) for r in rows], dtype=float)
    adjusted = adjust_pvalues(p)
    return [bool(a <= alpha and r["gain_over_random"] > 0) for a, r in zip(adjusted, rows)]


def null_counts(rows: Sequence[dict]) -> dict[str, int]:
    """Over :func:`matched_null_study` rows: in how many the GA's gain over random search is beyond chance
    (:func:`gain_beyond_random`, ``beats``), in how many random search alone beats the full image in most
    draws (``random_beats_full``), of ``n``."""
    return {"beats": sum(gain_beyond_random(rows)),
            "random_beats_full": sum(r["random_beats_full"] > 0.5 for r in rows), "n": len(rows)}


def describe_null(rows: list[dict]) -> list[str]:
    """The chapter's reading of E-3 and E-4, generated from :func:`matched_null_study` rows."""
    n = len(rows)
    beats_full = sum(r["random_beats_full"] > 0.5 for r in rows)
    gains = [r for r, beyond in zip(rows, gain_beyond_random(rows)) if beyond]
    always = sum(r["improves_in"] == r["runs"] for r in rows)
    gain_text = ", ".join(f"{r['image']} {r['gain_over_random']:+.3f}" for r in rows)
    lines = [f"- 'Improves the probability' over the full image: the GA in {always}"
             f" of {n} images in every run — and so does random search with the same {rows[0]['budget']} queries in "
             f"{beats_full} of {n} images (in most draws): beating the full image is what any search that maximises p "
             f"over masks does, so it is not evidence for the GA.",
             f"- The GA against random search at equal budget: gain {gain_text}; beyond chance (Welch's test, "
             f"Benjamini-Hochberg over the {n} images) in {len(gains)} of {n}."]
    best = [k for k in rows[0] if k.startswith("lime_best_k_N")]
    if best:
        parts = []
        for r in rows:
            parts.append(f"{r['image']}: " + ", ".join(f"{r[k]:.3f} (N = {k.split('N')[-1]})" for k in best))
        lines.append("- LIME's ranking with the best k reaches " + "; ".join(parts) +
                     " — compare with the GA's mean, not with a fixed k.")
    ratio = [r["lime_queries"] / r["budget"] for r in rows]
    per_query = [r["lime_ms_per_query"] / r["ga_ms_per_query"] for r in rows]
    reach = [q for r in rows for q in r["queries_to_random_median"] if q is not None]
    never = sum(q is None for r in rows for q in r["queries_to_random_median"])
    lines.append(f"- 'More than ten times faster': LIME's {rows[0]['lime_queries']} queries vs the GA's "
                 f"{rows[0]['budget']} is a ratio of {np.mean(ratio):.1f}; per query the two take "
                 f"{np.mean(per_query):.2f}× the same time (equal N, equal time). To reach random search's median "
                 f"probability the GA needed {int(np.median(reach)) if reach else 'n/a'} queries (median over runs; "
                 f"{never} run{'' if never == 1 else 's'} never reached it).")
    return lines


def plot_run(image: np.ndarray, segments: np.ndarray, result: EvolutionResult, p_full: float, class_name: str,
             path=None):
    """One GA run: best and mean fitness per generation beside the original and the evolved image."""
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    axes[0].plot(result.history_best, label="best")
    axes[0].plot(result.history_mean, label="population mean")
    axes[0].axhline(p_full, color="k", ls="--", lw=0.8, label="full image")
    axes[0].set_xlabel("generation"); axes[0].set_ylabel(f"p({class_name})"); axes[0].legend(fontsize=8)
    axes[1].imshow(image); axes[1].set_title("original", fontsize=9)
    axes[2].imshow(render(image, segments, result.best[None])[0])
    axes[2].set_title(f"evolved: p = {result.best_fitness:.2f}", fontsize=9)
    for ax in axes[1:]:
        ax.set_axis_off()
    return finish_figure(fig, path=path, dpi=100)


def plot_examples(examples, title: str = "", path=None):
    """Figure E-1: per (model, image) the photo, LIME's top superpixels (as many as the evolved mask keeps) and
    the best evolved mask. ``examples``: (model, image name) -> (image, segments, the best
    :class:`EvolutionResult`, LIME's explanation)."""
    fig, axes = plt.subplots(len(examples), 3, figsize=(9.5, 3.2 * len(examples)), squeeze=False)
    for r, ((model_name, image_name), (img, seg, best, lime_exp)) in enumerate(examples.items()):
        axes[r, 0].imshow(img); axes[r, 0].set_title(f"{image_name} ({model_name})", fontsize=9)
        show_explanation(axes[r, 1], lime_exp, img, max(best.size, 1), hide_rest=True,
                         title=f"LIME, top {best.size}")
        axes[r, 2].imshow(render(img, seg, best.best[None])[0])
        axes[r, 2].set_title(f"EvoLIME: p = {best.best_fitness:.2f}", fontsize=9)
        for ax in axes[r]:
            ax.set_axis_off()
    return finish_figure(fig, title, path, dpi=80)


def plot_progress(result: EvolutionResult, image: np.ndarray, segments: np.ndarray, generation: int):
    """A GA run as it stood after ``generation``: the best fitness so far, and the image its best chromosome keeps
    (the queries spent by then in the title)."""
    chromosome = result.history_best_chromosomes[generation]
    spent = ga_budget(result.params["population"], generation, result.params["elitism"])
    fig, ax = plt.subplots(1, 2, figsize=(6.6, 3.1))
    ax[0].plot(result.history_best[: generation + 1]); ax[0].set_xlim(0, len(result.history_best) - 1)
    ax[0].set_xlabel("generation"); ax[0].set_ylabel("best fitness")
    ax[0].set_title(f"{spent} queries", fontsize=9)
    ax[1].imshow(render(image, segments, chromosome[None])[0]); ax[1].set_axis_off()
    ax[1].set_title(f"best: {int(chromosome.sum())} superpixels, F = {result.history_best[generation]:.2f}",
                    fontsize=9)
    fig.tight_layout()
    return fig
