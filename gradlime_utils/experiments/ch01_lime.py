"""Chapter 01 (LIME): how much an explanation changes when only LIME's random sample changes, the stability study
that chapter 04 also runs for GradLIME."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from gradlime_utils.methods.neighborhood import Neighborhood, sample_neighborhood, segment_image
from gradlime_utils.methods.surrogate import SurrogateExplanation, explain_gradlime, explain_lime, superpixel_activation
from gradlime_utils.metrics.nulls import permuted
from gradlime_utils.metrics.stats import mean_ci
from gradlime_utils.plotting import pm, save_figure
from gradlime_utils.runtime import Size, Sizes

#: The chapter's scale in each profile (smoke / quick / paper); the notebook's ``sizes`` parameter overrides by name.
SIZES = Sizes(
    num_samples=Size(40, 1000, 1000, "LIME samples per explanation"),
    stability_seeds=Size(2, 3, 5, "seeds per stability curve"),
    stability_sizes=Size([20, 40], [100, 250, 500], [100, 250, 500, 1000], "sample sizes N of the curves"),
    stability_segmentations=Size(["quickshift", "grid"], ["quickshift", "slic"],
                                 ["quickshift", "slic", "felzenszwalb", "grid"], "segmentations compared"),
    kernel_sizes=Size([2, 4], [2, 4, 6, 8], [2, 4, 6, 8], "quickshift kernel sizes the slider offers"),
    max_dists=Size([200], [50, 100, 200], [50, 100, 200], "quickshift max_dist values the slider offers"),
)


def jaccard(a, b) -> float:
    """``|A ∩ B| / |A ∪ B|`` of two sets of superpixel ids (1 when both are empty)."""
    a, b = set(map(int, a)), set(map(int, b))
    return 1.0 if not a | b else len(a & b) / len(a | b)


def mean_pairwise_jaccard(sets: Sequence) -> float:
    pairs = list(itertools.combinations(sets, 2))
    if not pairs:
        raise ValueError("need at least two explanations to compare")
    return float(np.mean([jaccard(a, b) for a, b in pairs]))


def mean_pairwise_spearman(vectors: Sequence[np.ndarray]) -> float:
    """Mean Spearman rank correlation of weight vectors over all pairs (NaN pairs, e.g. constant, skipped)."""
    values = []
    for a, b in itertools.combinations(vectors, 2):
        if np.ptp(a) > 0 and np.ptp(b) > 0:
            values.append(spearmanr(a, b).statistic)
    return float(np.mean(values)) if values else float("nan")


@dataclass
class StabilityCurve:
    """Mean pairwise top-k Jaccard and weight rank correlation across seeds, per neighbourhood size."""

    sizes: np.ndarray
    jaccard: np.ndarray
    spearman: np.ndarray
    k: int
    num_seeds: int


def stability_curve(neighborhoods: Sequence[Neighborhood], label: int, sizes: Sequence[int], k: int = 5,
                    explain: Callable[[Neighborhood, int], SurrogateExplanation] = explain_lime) -> StabilityCurve:
    """Stability of ``explain`` across neighbourhoods that differ only in their seed.

    Each size n uses the first n samples of every neighbourhood (``Neighborhood.head``), so one
    sample of the largest size per seed serves the whole curve.
    """
    if len(neighborhoods) < 2:
        raise ValueError(f"need neighbourhoods from at least two seeds, got {len(neighborhoods)}")
    first = neighborhoods[0]
    if any(nb.segments.shape != first.segments.shape or not np.array_equal(nb.segments, first.segments)
           for nb in neighborhoods[1:]):
        raise ValueError("the neighbourhoods must share one segmentation so that superpixel ids match")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    jac, rho = [], []
    for n in sizes:
        exps = [explain(nb.head(int(n)), label) for nb in neighborhoods]
        jac.append(mean_pairwise_jaccard([e.ranking[:k] for e in exps]))
        rho.append(mean_pairwise_spearman([e.coef for e in exps]))
    return StabilityCurve(sizes=np.asarray(sizes), jaccard=np.asarray(jac), spearman=np.asarray(rho), k=k,
                          num_seeds=len(neighborhoods))


def curves_by_segmentation(bundle, image: np.ndarray, label: int, segmentations: Sequence[str],
                           seeds: Sequence[int], sizes: Sequence[int], k: int = 5, seed: int = 0
                           ) -> dict[str, StabilityCurve]:
    """One :func:`stability_curve` per segmentation: the image segmented once (with ``seed``), one neighbourhood
    of ``max(sizes)`` samples per sampling seed, every size read from their first samples."""
    curves = {}
    for segmentation in segmentations:
        segments = segment_image(image, segmentation, seed=seed)
        hoods = [sample_neighborhood(bundle, image, num_samples=max(sizes), seed=s, segments=segments,
                                     segmentation=segmentation) for s in seeds]
        curves[segmentation] = stability_curve(hoods, label, sizes, k=k)
    return curves


def plot_curves(curves: dict[str, StabilityCurve], title: str = "", path=None):
    """Top-k Jaccard and Spearman across seeds against N, one line per curve; saved (PNG and PDF) to ``path``."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, curve in curves.items():
        axes[0].plot(curve.sizes, curve.jaccard, "o-", label=name)
        axes[1].plot(curve.sizes, curve.spearman, "o-", label=name)
    k = next(iter(curves.values())).k if curves else 5
    axes[0].set_ylabel(f"top-{k} Jaccard across seeds")
    axes[1].set_ylabel("Spearman of weights across seeds")
    for ax in axes:
        ax.set_xlabel("N (perturbed samples)"); ax.set_ylim(0, 1.02); ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, dpi=120)
    return fig


def curve_rows(curves: dict[str, StabilityCurve]) -> list[dict]:
    """Tidy rows (segmentation, N, top-k Jaccard, Spearman) of :func:`curves_by_segmentation`."""
    return [{"segmentation": s, "N": int(n), "top5_jaccard": round(float(j), 4), "spearman": round(float(r), 4)}
            for s, c in curves.items() for n, j, r in zip(c.sizes, c.jaccard, c.spearman)]


def pooled(neighborhoods: Sequence[Neighborhood]) -> Neighborhood:
    """One neighbourhood holding every sample of ``neighborhoods`` (same image and segmentation)."""
    if not neighborhoods:
        raise ValueError("need at least one neighbourhood to pool")
    first = neighborhoods[0]
    if any(not np.array_equal(nb.segments, first.segments) for nb in neighborhoods[1:]):
        raise ValueError("the neighbourhoods must share one segmentation")
    cat = {f: np.concatenate([getattr(nb, f) for nb in neighborhoods])
           for f in ("data", "predictions", "distances", "kernel_weights")}
    return replace(first, **cat)


def stability_study(neighborhoods: Sequence[Sequence[Neighborhood]], labels: Sequence[int], cams: Sequence[np.ndarray],
                    sizes: Sequence[int], k: int = 5, seed: int = 0) -> list[dict]:
    """Stability across sampling seeds *and* agreement with a high-N reference, with the prior's controls.

    ``neighborhoods[i]`` are the seeds' neighbourhoods of image ``i`` (one segmentation), ``cams[i]`` its
    Grad-CAM map. For seed ``s`` the reference is LIME fitted on the *other* seeds' samples pooled (leave one
    out: (seeds - 1) × N_max samples, independent of seed ``s``'s own). Per image, method and N:

    - ``jaccard_seeds``: mean pairwise top-``k`` Jaccard across seeds (repeatability);
    - ``agreement_top_k``: mean top-``k`` Jaccard with the reference (does it find what many samples find?);
    - ``agreement_spearman``: mean rank correlation of all weights with the reference's.

    Methods: LIME, GradLIME (Eq. 9), GradLIME with the Grad-CAM prior *shuffled* across superpixels (seeded
    per image: a prior of the same values that carries no location), and the Grad-CAM-only ranking (no samples
    at all, so its repeatability is 1 by construction; reported at N = 0).
    """
    if not (len(neighborhoods) == len(labels) == len(cams)):
        raise ValueError(f"got {len(neighborhoods)} images' neighbourhoods, {len(labels)} labels and {len(cams)} CAMs")
    rows = []
    for i, (hoods, label, cam) in enumerate(zip(neighborhoods, labels, cams)):
        if len(hoods) < 2:
            raise ValueError(f"image {i}: need neighbourhoods from at least two seeds, got {len(hoods)}")
        label = int(label)
        act = superpixel_activation(cam, hoods[0].segments)
        shuffled = permuted(act, seed, i)
        refs = [explain_lime(pooled([h for j, h in enumerate(hoods) if j != s]), label) for s in range(len(hoods))]
        explainers = {
            "LIME": explain_lime,
            "GradLIME (feature)": lambda nb, lab: explain_gradlime(nb, lab, act, "feature"),
            "GradLIME (shuffled prior)": lambda nb, lab: explain_gradlime(nb, lab, shuffled, "feature"),
        }
        for n in sizes:
            for name, explain in explainers.items():
                exps = [explain(nb.head(int(n)), label) for nb in hoods]
                rows.append(_stability_row(i, name, int(n), exps, refs, k))
        cam_rank = np.argsort(-act, kind="stable")
        cam_only = [_Ranked(cam_rank, act)] * len(hoods)
        rows.append(_stability_row(i, "Grad-CAM only (no samples)", 0, cam_only, refs, k))
    return rows


@dataclass
class _Ranked:
    ranking: np.ndarray
    coef: np.ndarray


def _stability_row(image: int, method: str, n: int, exps, refs, k: int) -> dict:
    agree = [jaccard(e.ranking[:k], r.ranking[:k]) for e, r in zip(exps, refs)]
    rho = [spearmanr(e.coef, r.coef).statistic for e, r in zip(exps, refs) if np.ptp(e.coef) > 0 and np.ptp(r.coef) > 0]
    return {"image": image, "method": method, "N": n, "jaccard_seeds": mean_pairwise_jaccard([e.ranking[:k] for e in exps]),
            "agreement_top_k": float(np.mean(agree)), "agreement_spearman": float(np.mean(rho)) if rho else float("nan")}


def stability_summary(rows: Sequence[dict], columns: Sequence[str] = ("jaccard_seeds", "agreement_top_k",
                                                                       "agreement_spearman")):
    """Mean ± 95% CI over images per method and N (a DataFrame), from :func:`stability_study` rows."""
    frame = pd.DataFrame(rows)
    out = []
    for (method, n), group in frame.groupby(["method", "N"], sort=False):
        row = {"method": method, "N": n, "images": len(group)}
        for c in columns:
            mean, half = mean_ci(group[c].to_numpy())
            row[c] = pm(mean, half)
        out.append(row)
    return pd.DataFrame(out).sort_values(["N", "method"], kind="stable").reset_index(drop=True)


def seeded_neighborhoods(bundle, image: np.ndarray, segments: np.ndarray, seeds: Sequence[int], num_samples: int,
                         reuse: Sequence[Neighborhood] = (), hide_color=0) -> list[Neighborhood]:
    """One neighbourhood of ``num_samples`` per seed on one segmentation; a neighbourhood in ``reuse`` with the
    same seed, segmentation and hiding (and at least as many samples) is taken instead of querying the model
    again (its first ``num_samples`` rows are the same draws)."""
    out = []
    for s in seeds:
        found = next((nb for nb in reuse if nb.seed == s and nb.num_samples >= num_samples and nb.hide_color == hide_color
                      and np.array_equal(nb.segments, segments)), None)
        out.append(found.head(num_samples) if found is not None else
                   sample_neighborhood(bundle, image, num_samples=num_samples, seed=s, segments=segments,
                                       hide_color=hide_color, progress=False))
    return out


def plot_stability(rows: Sequence[dict], path=None):
    """Repeatability across seeds and agreement with the high-N reference against N (mean ± 95% CI over images)."""
    frame = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, column, label in zip(axes, ("jaccard_seeds", "agreement_top_k"),
                                 ("top-5 Jaccard across seeds", "top-5 Jaccard with the high-N reference")):
        for method, group in frame[frame["N"] > 0].groupby("method", sort=False):
            stats = [mean_ci(g[column].to_numpy()) for _, g in group.groupby("N")]
            sizes = sorted(group["N"].unique())
            mean, half = np.array(stats).T
            ax.errorbar(sizes, mean, yerr=np.nan_to_num(half), marker="o", capsize=3, label=method)
        cam = frame[frame["N"] == 0]
        if len(cam):
            ax.axhline(cam[column].mean(), color="grey", ls="--", label="Grad-CAM only (no samples)")
        ax.set_xscale("log"); ax.set_xlabel("model queries N"); ax.set_ylabel(label); ax.set_ylim(0, 1.05)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100, bbox_inches="tight")
    return fig


def describe_stability(rows: Sequence[dict]) -> list[str]:
    """The stability reading at the largest N: repeatability and agreement of LIME, GradLIME and the controls,
    mean ± 95% CI over images."""
    frame = pd.DataFrame(rows)
    n = int(frame["N"].max())

    def stat(method, column, size):
        values = frame[(frame["method"] == method) & (frame["N"] == size)][column].to_numpy()
        mean, half = mean_ci(values)
        return pm(mean, half)

    methods = ["LIME", "GradLIME (feature)", "GradLIME (shuffled prior)"]
    rep = ", ".join(f"{m} {stat(m, 'jaccard_seeds', n)}" for m in methods)
    agree = ", ".join(f"{m} {stat(m, 'agreement_top_k', n)}" for m in methods)
    cam = stat("Grad-CAM only (no samples)", "agreement_top_k", 0)
    images = frame["image"].nunique()
    return [f"- Stability at N = {n} over {images} images: repeatability (top-5 Jaccard across seeds) {rep}; "
            f"the Grad-CAM-only ranking is 1 by construction.",
            f"- Agreement with the high-N LIME reference (top-5 Jaccard): {agree}; Grad-CAM only {cam}. "
            f"A prior that raises repeatability but lowers agreement makes the explanation more repeatable by "
            f"pulling it towards the prior, not towards what more samples find."]
