"""Chapter 06 (NormLIME): the local explanations it aggregates, keep-and-retrain (KAR) against its nulls (random
rankings, the ink of each cell, LIME-average), the tables and the figures; NormLIME itself is
:mod:`gradlime_utils.methods.normlime`."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from gradlime_utils.data.images import to_rgb_uint8
from gradlime_utils.data.mnist_cnn import fit_mnist_cnn, mnist_to_tensor
from gradlime_utils.methods.attributions import noise_tunnel_maps
from gradlime_utils.methods.neighborhood import sample_neighborhood
from gradlime_utils.methods.normlime import LocalExplanation, NormLime, aggregate, pooled_importance, ranking_of
from gradlime_utils.methods.surrogate import explain_lime, superpixel_means
from gradlime_utils.metrics.nulls import adjust_pvalues, bootstrap, mc_pvalue, random_ranking
from gradlime_utils.metrics.stats import mean_ci
from gradlime_utils.plotting import CMAPS, finish_figure, pm
from gradlime_utils.runtime import Size, Sizes
from gradlime_utils.validation import check_int, derive_seed


def keep_top_features(images: np.ndarray, segments: np.ndarray, rankings: np.ndarray, fraction: float,
                      fill: int = 0) -> np.ndarray:
    """KAR's inputs: each image keeps only the top ``fraction`` of the grid cells of its own ranking.

    ``rankings`` holds one ranking of the global features per image (e.g. the NormLIME ranking of the image's
    class); every other cell is set to ``fill``.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    images = np.asarray(images)
    rankings = np.asarray(rankings)
    n_features = int(segments.max()) + 1
    if rankings.shape != (len(images), n_features):
        raise ValueError(f"rankings must have shape ({len(images)}, {n_features}), got {rankings.shape}")
    k = max(1, int(round(fraction * n_features)))
    keep = np.zeros((len(images), n_features), dtype=bool)
    np.put_along_axis(keep, rankings[:, :k], True, axis=1)
    mask = keep[:, segments]
    if images.ndim == 4:
        mask = mask[..., None]
    return np.where(mask, images, np.asarray(fill, dtype=images.dtype))


# ---------------------------------------------------------------------------------------------------------
# KAR against its nulls


def ink_scores(images: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """The model-free null of a KAR ranking: the mean intensity of each grid cell over ``images``.

    On aligned digits the cells where strokes usually are carry the class information; a ranking that only
    finds them needs no model and no explanation.
    """
    images = np.asarray(images, dtype=float)
    if images.ndim == 4:
        images = images.mean(axis=-1)
    segments = np.asarray(segments)
    if images.shape[1:] != segments.shape:
        raise ValueError(f"images are {images.shape[1:]}, the segments {segments.shape}")

    return superpixel_means(images.mean(axis=0), segments)


def kar_accuracy(x_train, y_train, x_test, y_test, segments, ranking, fractions, seeds, epochs: int = 3,
                 num_classes: int = 10) -> np.ndarray:
    """Keep-and-retrain (Hooker et al. 2019): test accuracy (fractions × seeds) of a fresh CNN trained and tested
    on digits that keep only the top ``fraction`` of cells of ``ranking`` (one ranking for every image)."""
    ranking = np.asarray(ranking)
    out = np.zeros((len(fractions), len(seeds)))
    for a, frac in enumerate(fractions):
        tr = keep_top_features(x_train, segments, np.tile(ranking, (len(x_train), 1)), frac)
        te = keep_top_features(x_test, segments, np.tile(ranking, (len(x_test), 1)), frac)
        for b, s in enumerate(seeds):
            model = fit_mnist_cnn(tr, y_train, num_classes, epochs=epochs, seed=int(s))
            with torch.inference_mode():
                out[a, b] = float((model(mnist_to_tensor(te)).argmax(1).numpy() == np.asarray(y_test)).mean())
    return out


def kar_random(x_train, y_train, x_test, y_test, segments, fractions, seeds, epochs: int = 3,
               n_random: int = 10, seed: int = 0, num_classes: int = 10) -> np.ndarray:
    """KAR's null (fractions × ``n_random``): ``n_random`` random rankings, seeded permutations of the cells, each
    retrained once; ranking j trains with seed ``seeds[j % len(seeds)] + 100 j``, so that no two random rankings
    share a network's initialisation."""
    m = int(np.max(segments)) + 1
    seeds = list(seeds)
    return np.concatenate([kar_accuracy(x_train, y_train, x_test, y_test, segments,
                                        random_ranking(m, seed, j), fractions,
                                        [seeds[j % len(seeds)] + 100 * j], epochs, num_classes)
                           for j in range(check_int("n_random", n_random, 1))], axis=1)


def explain_digits(bundle, images: np.ndarray, labels: np.ndarray, per_class: int, num_samples: int,
                   segments: np.ndarray, classes: Sequence[int] = tuple(range(10)), seed: int = 0):
    """The local explanations NormLIME aggregates: LIME (``num_samples`` samples, the grid ``segments`` as
    features) on ``per_class`` training images of each class, drawn with ``seed``; image k uses seed
    ``seed + k``. Each explains the model's top class. Returns the :class:`LocalExplanation` list and, per
    explained class, the first (image index, LIME explanation)."""
    images, labels = np.asarray(images), np.asarray(labels)
    m = int(np.max(segments)) + 1
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([rng.choice(np.flatnonzero(labels == d), per_class, replace=False) for d in classes])
    local, first = [], {}
    for k, i in enumerate(chosen):
        hood = sample_neighborhood(bundle, to_rgb_uint8(images[i]), num_samples=num_samples, seed=derive_seed(seed, k),
                                   segments=segments, segmentation="grid", progress=False)
        exp = explain_lime(hood, hood.top_label)
        local.append(LocalExplanation(hood.top_label, np.arange(m), exp.coef))
        first.setdefault(hood.top_label, (i, exp))
    return local, first


def bootstrap_agreement(explanations: Sequence[LocalExplanation], num_features: int, n_boot: int = 200,
                        top: int = 10, seed: int = 0) -> dict:
    """How different NormLIME's pooled ranking is from LIME-average's, over bootstrap resamples of the
    explanation set: Spearman correlation of the two scores and the overlap of their top ``top`` cells
    (mean and 95% interval), and how stable NormLIME's own top cells are (overlap with the full set's)."""
    explanations = list(explanations)
    full_top = set(ranking_of(pooled_importance(aggregate(explanations, num_features)))[:top])

    def agreement(sample):
        norm = pooled_importance(aggregate(sample, num_features))
        avg = np.mean([np.abs(e.weights) for e in sample], axis=0)
        return (spearmanr(norm, avg).statistic, len(set(ranking_of(norm)[:top]) & set(ranking_of(avg)[:top])),
                len(set(ranking_of(norm)[:top]) & full_top))

    rho, overlap, self_overlap = zip(*bootstrap(explanations, agreement, n_boot, seed))

    def summary(v):
        v = np.asarray(v, dtype=float)
        return [float(v.mean()), float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975))]

    return {"spearman": summary(rho), "top_overlap": summary(overlap), "self_top_overlap": summary(self_overlap),
            "top": top, "n_boot": n_boot}


RANKINGS = ("NormLIME", "LIME-average", "ink")

#: The chapter's scale in each profile (smoke / quick / paper); the notebook's ``sizes`` parameter overrides by name.
SIZES = Sizes(
    per_class=Size(3, 30, 100, "LIME explanations per digit"),
    num_samples=Size(60, 300, 1000, "LIME samples per explanation"),
    n_boot=Size(20, 200, 500, "bootstrap resamples of the explanation set"),
    fractions=Size([0.2], [0.1, 0.2], [0.1, 0.2, 0.3, 0.5, 0.7, 0.9], "fractions of the cells kept (KAR)"),
    kar_seeds=Size([0, 1], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4], "KAR training seeds, paired across rankings"),
    n_random=Size(2, 19, 359, "random rankings, one retraining seed each (paper: chosen by power)"),
    kar_epochs=Size(1, 3, 6, "epochs per KAR retraining"),
    kar_train_images=Size(400, None, None, "training digits per KAR retraining (None: all)"),
)


def kar_comparison(kar: dict, fractions, reference: str = "LIME-average", method: str = "NormLIME",
                   references: Sequence[str] = ("LIME-average", "ink"), alpha: float = 0.05) -> list[dict]:
    """Per fraction: ``method`` − each of ``references`` paired by training seed (mean, 95% t interval), and
    each ranking against the random rankings.

    A ranking's mean accuracy over its seeds is set against the random rankings (each retrained once) by the
    one-sided rank p-value (:func:`gradlime_utils.metrics.nulls.mc_pvalue`; a seed mean varies less than one
    retrain, so the test is conservative), adjusted by Benjamini-Hochberg over every ranking and fraction of the
    call; ``"<name> vs random"`` is "above", "not above", or "undecided" when the random rankings are too few for
    any p-value to reach ``alpha`` (n random rankings give at least 1 / (n + 1)). ``reference`` is kept first
    among ``references`` (the difference the chapter cites first).
    """
    references = [reference] + [r for r in references if r != reference and r in kar]
    rows = []
    random = np.asarray(kar["random"], dtype=float)  # fractions × permutations
    for a, frac in enumerate(fractions):
        row = {"fraction": float(frac), "method": method, "differences": [],
               "random mean": float(random[a].mean()), "random low": float(np.quantile(random[a], 0.025)),
               "random high": float(np.quantile(random[a], 0.975)), "random n": int(random.shape[1])}
        for ref in references:
            mean, half = mean_ci(np.asarray(kar[method])[a] - np.asarray(kar[ref])[a])
            row["differences"].append({"reference": ref, "difference": mean, "ci95": half})
        for name, acc in kar.items():
            if name != "random":
                row[f"{name} mean"] = float(np.mean(acc[a]))
                row[f"{name} p random"] = mc_pvalue(row[f"{name} mean"], random[a], "greater")
        rows.append(row)
    keys = [(row, name) for row in rows for name in kar if name != "random"]
    adjusted = adjust_pvalues([row[f"{name} p random"] for row, name in keys])
    decidable = 1 / (random.shape[1] + 1) <= alpha
    for (row, name), p in zip(keys, adjusted):
        row[f"{name} vs random"] = ("undecided" if not decidable else "above" if p <= alpha else "not above")
    return rows


def above_random(row: dict, names=RANKINGS) -> list[str]:
    """The rankings of one :func:`kar_comparison` row that are above the random rankings (rank p-value,
    Benjamini-Hochberg): what the chapter's prose and the ledger cite."""
    return [n for n in names if row.get(f"{n} vs random") == "above"]


def kar_numbers(row: dict) -> dict:
    """The numbers the chapter's prose cites from one :func:`kar_comparison` row, as text to glue: the fraction
    kept, how many random rankings, the rankings above them (or "undecided"), NormLIME − LIME-average and
    NormLIME − ink (paired by seed)."""
    diffs = {d["reference"]: _difference(d) for d in row["differences"]}
    undecided = row.get(f"{row['method']} vs random") == "undecided"
    return {"kept": f"{row['fraction']:.0%}", "n_random": row["random n"],
            "above": "undecided" if undecided else ", ".join(above_random(row)) or "none",
            "diff": diffs.get("LIME-average", "n/a"), "ink": diffs.get("ink", "n/a")}


def _difference(d: dict) -> str:
    return pm(d["difference"], d["ci95"], 3, signed=True)


def kar_frame(rows: list[dict]):
    """The KAR table: each ranking's mean accuracy (▲: above the random rankings after the multiplicity
    control), the random rankings' range, and the paired differences."""
    out = []
    for r in rows:
        cell = {"kept": f"{r['fraction']:.0%}"}
        for name in [k[:-5] for k in r if k.endswith(" mean") and k != "random mean"]:
            cell[name] = f"{r[f'{name} mean']:.3f}" + (" ▲" if r.get(f"{name} vs random") == "above" else "")
        cell[f"random ({r['random n']})"] = f"{r['random mean']:.3f} [{r['random low']:.3f}, {r['random high']:.3f}]"
        for d in r["differences"]:
            cell[f"{r['method']} − {d['reference']}"] = _difference(d)
        out.append(cell)
    return pd.DataFrame(out)


def describe_kar(rows: list[dict], agreement: dict) -> list[str]:
    """The chapter's reading of the KAR comparison and of how different the two pooled rankings are."""
    lines = []
    for r in rows:
        parts = []
        for d in r["differences"]:
            resolved = np.isfinite(d["ci95"]) and abs(d["difference"]) > d["ci95"]
            verdict = ("identical in every seed" if d["difference"] == 0 and d["ci95"] == 0
                       else "resolved by the seeds" if resolved else "not resolved by the seeds")
            parts.append(f"{r['method']} − {d['reference']} = {_difference(d)} ({verdict})")
        states = {n: r[f"{n} vs random"] for n in RANKINGS if f"{n} vs random" in r}
        if "undecided" in states.values():
            against = (f"against the random rankings: undecided ({r['random n']} random rankings cannot give a "
                       f"p-value at or below 0.05)")
        else:
            against = ("above the random rankings (rank p-value, Benjamini-Hochberg over rankings and "
                       f"fractions): {', '.join(n for n, v in states.items() if v == 'above') or 'none'}")
        lines.append(f"- {r['fraction']:.0%} of cells kept: {'; '.join(parts)}; {against}.")
    s, o = agreement["spearman"], agreement["top_overlap"]
    lines.append(f"- The pooled NormLIME and LIME-average scores have Spearman {s[0]:.2f} [{s[1]:.2f}, {s[2]:.2f}] and "
                 f"share {o[0]:.1f} of their top {agreement['top']} cells [{o[1]:.0f}, {o[2]:.0f}] over "
                 f"{agreement['n_boot']} bootstrap resamples of the explanations: with every cell in every "
                 f"explanation, pooling w²/Σ|w| is close to averaging |w|, so KAR cannot tell them apart.")
    return lines


def plot_kar(kar: dict, fractions, title: str = "", path=None):
    """KAR accuracy against the fraction of cells kept, one line per ranking (mean ± standard deviation over its
    retrainings); saved (PNG and PDF) to ``path``."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, acc in kar.items():
        acc = np.asarray(acc)
        ax.errorbar(fractions, acc.mean(1), yerr=acc.std(1), marker="o", capsize=3, label=f"{name} ({acc.shape[1]} runs)")
    ax.set_xlabel("fraction of grid cells kept"); ax.set_ylabel("test accuracy after retraining")
    ax.set_title(title, fontsize=10); ax.legend(fontsize=8)
    return finish_figure(fig, path=path, dpi=90)


def plot_top_cells(normlime: "NormLime", mean_image: np.ndarray, segments: np.ndarray, label: int, top_k: int):
    """A class's ``top_k`` NormLIME cells (their importance, magma) over the class's mean image, beside it."""
    importance = normlime.importance[label]
    shown = np.zeros(len(importance))
    top = normlime.ranking(label)[:top_k]
    shown[top] = importance[top]
    fig, ax = plt.subplots(1, 2, figsize=(5.4, 2.8))
    ax[0].imshow(mean_image, cmap=CMAPS["image"]); ax[0].set_title(f"mean digit {label}", fontsize=9)
    ax[1].imshow(mean_image, cmap=CMAPS["image"])
    ax[1].imshow(shown[segments], cmap=CMAPS["map"], alpha=0.6)
    ax[1].set_title(f"NormLIME top {top_k} cells", fontsize=9)
    for a in ax:
        a.set_axis_off()
    fig.tight_layout()
    return fig


def plot_class_maps(bundle, examples: dict, normlime: "NormLime", segments: np.ndarray, classes=(9, 3), title: str = "",
                    path=None):
    """Figure N-1: for each class in ``classes``, one digit (``examples[class]`` = (28×28 image, its LIME
    explanation)) with its VarGrad and SmoothGrad maps, its LIME weights painted on the grid cells, and the
    class's NormLIME importance. Saved as PNG and PDF to ``path``."""
    fig, axes = plt.subplots(len(classes), 5, figsize=(12, 2.5 * len(classes)), squeeze=False)
    for r, d in enumerate(classes):
        digit, exp = examples[d]
        x = bundle.preprocess(to_rgb_uint8(digit)[None])
        sg = noise_tunnel_maps(bundle.model, x, [d], "smoothgrad")[0].cpu().numpy()  # before VarGrad, as always
        vg = noise_tunnel_maps(bundle.model, x, [d], "vargrad")[0].cpu().numpy()
        panels = [(digit, CMAPS["image"], "input"), (vg, CMAPS["map"], "VarGrad"), (sg, CMAPS["map"], "SmoothGrad"),
                  (np.asarray(exp.coef)[segments], CMAPS["signed"], "LIME (this image)"),
                  (np.asarray(normlime.importance[d])[segments], CMAPS["map"], f"NormLIME, class {d}")]
        for ax, (img, cmap, name) in zip(axes[r], panels):
            lim = (np.abs(img).max() or 1) if cmap == CMAPS["signed"] else None
            ax.imshow(img, cmap=cmap, vmin=-lim if lim else None, vmax=lim)
            ax.set_title(name, fontsize=9); ax.set_axis_off()
    return finish_figure(fig, title, path, dpi=90)
