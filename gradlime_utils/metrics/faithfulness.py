"""Faithfulness metrics for many maps at once, on shared perturbations, with chance bands from random maps.

A faithfulness score means something only beside what a *random* map scores under the identical pipeline
(the same images, model, perturbations and fill values). Scoring a hundred random maps through Quantus costs a
hundred times the model queries of one method, so this module re-implements the five perturbation metrics
the evaluation chapter uses, step by step as Quantus 0.6 computes them (the same index draws from the same
random stream, the same fill values as ``quantus.perturb_func``, the same similarity functions and the same
normalisation), and streams every perturbed input through the bundle's fast engine in large batches. With the
PyTorch engine and the batch composition of a Quantus call, the scores equal Quantus' (tested):

- **FaithfulnessCorrelation** (Bhatt et al. 2020): the random pixel subsets do not depend on the map, so the
  model's output drops are computed *once* per image and every map is scored against them: a hundred random
  maps cost no extra query.
- **FaithfulnessEstimate** (Alvarez-Melis & Jaakkola 2018), **MonotonicityCorrelation** (Nguyen & Martínez
  2020), **IROF** (Rieger & Hansen 2020) and **RegionPerturbation** (Samek et al. 2017): the perturbation
  order follows the map, so each map needs its own queries; random fills are drawn from the same seed for
  every map (as Quantus does when each call is seeded), so they share the fill values.

Three Quantus 0.6 defects are fixed rather than reproduced (each tested):

- IROF fills each removed superpixel with the *batch's* mean and sums the area over the curve over segments:
  a score depends on which images share the batch and is on a scale of tens. :meth:`PerturbationScorer.irof`
  computes it per image (the mean of that image as Quantus computes it for a batch of one) and divides by the
  number of segments, so it lies near [0, 1] and images are comparable.
- RegionPerturbation with ``regions_evaluation=1`` keeps only the hottest patch; we report the AOPC (the mean
  drop over the first ``regions`` patches, Samek et al. 2017 Eq. 12) of the curve Quantus computes.
- Quantus' batched Spearman raises when a row is constant (scipy then returns one NaN, not an array); a
  constant row scores NaN here.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from scipy.stats import spearmanr
from skimage.segmentation import slic

from gradlime_utils.data.models import ModelBundle
from gradlime_utils.metrics.nulls import RANDOM_MAP_KINDS, chance_band, random_maps, shifted_maps
from gradlime_utils.metrics.quantus_bridge import (Failed, NotApplicable, _inputs, _labels, complexity_metrics,
                                                   score_many, sufficiency_applicability, sufficiency_metric)
from gradlime_utils.metrics.quantus_bridge import _quantus as q
from gradlime_utils.runtime import check_profile
from gradlime_utils.runtime import progress_bar as tqdm
from gradlime_utils.validation import check_int, check_seed, derive_seed

FAITHFULNESS_METRICS = ("FaithfulnessCorrelation", "FaithfulnessEstimate", "MonotonicityCorrelation", "IROF",
                        "RegionPerturbation")


def _quantus():
    return q()


@dataclass(frozen=True)
class FaithfulnessSettings:
    """Parameters of the five perturbation metrics (in features of the C×H×W input, as Quantus counts them)."""

    fc_runs: int
    fc_subset: int
    fe_step: int
    mc_step: int
    mc_samples: int
    rp_patch: int
    rp_regions: int
    irof_segments: int

    @classmethod
    def for_profile(cls, profile: str, image_size: int, channels: int = 3) -> "FaithfulnessSettings":
        """The GradLIME evaluation's parameters (``paper``) or lighter ones (``quick``, ``smoke``).

        ``paper``, the GradLIME repository's settings for 224-pixel images (scaled with ``image_size``):
        FaithfulnessCorrelation 100 runs of 224 features, FaithfulnessEstimate steps of 224 features,
        MonotonicityCorrelation steps of 3,136 features with 10 samples, RegionPerturbation patches of 14
        pixels (AOPC over 100 regions), IROF on SLIC with ``n_segments=100`` (Quantus' default; about 76 segments
        on the photos). ``quick``: 30 runs, FaithfulnessEstimate and MonotonicityCorrelation in 16 steps of 1/16
        of the input, 1 noise sample, AOPC over 16 regions, SLIC ``n_segments=25`` (about 20 segments).
        ``smoke``: 5 runs, 4 steps, 1 sample, 4 regions, 10 segments.
        Quantus counts features over C×H×W (a map is broadcast to the channels).
        """
        check_profile(profile)
        size = check_int("image_size", image_size, 16)
        if size % 4:
            raise ValueError(f"image_size must be a multiple of 4 and >= 16, got {image_size!r}")
        features = channels * size * size
        row, sixteenth = size, size * size // 16
        patch = max(2, size // 16)
        if profile == "paper":
            return cls(100, row, row, sixteenth, 10, patch, 100, 100)
        if profile == "quick":
            return cls(30, row, features // 16, features // 16, 1, patch, 16, 25)
        return cls(5, row, features // 4, features // 4, 1, patch, 4, 10)


def _replace(arr: np.ndarray, indices: np.ndarray, fill: str) -> np.ndarray:
    """``quantus.perturb_func.batch_baseline_replacement_by_indices`` for the fills used here, without the
    three unused reductions Quantus computes per call: ``"black"`` is each row's minimum, ``"uniform"`` one
    U(0, 1) value per row. The random stream advances exactly as Quantus' does (one uniform draw per row per
    call, whatever the fill), so seeded scores stay equal to Quantus' (tested)."""
    uniform = np.random.uniform(low=0.0, high=1.0, size=arr.shape[0])
    value = arr.min(axis=1) if fill == "black" else uniform
    out = arr.copy()
    out[np.arange(arr.shape[0])[:, None], indices] = value[:, None]
    return out


def _spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row of ``a`` with the same row of ``b``: what Quantus'
    ``correlation_spearman(batched=True)`` returns, but NaN for a constant row where Quantus raises
    (``'float' object has no attribute 'shape'``) when scipy collapses its result to one NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array([spearmanr(x, y).statistic for x, y in zip(a, b)], dtype=float)


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Quantus' ``correlation_pearson(batched=True)`` (scipy's row-wise Pearson), quiet about constant rows
    (NaN: a map or a drop that does not vary has no correlation)."""
    quantus = _quantus()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(quantus.similarity_func.correlation_pearson(a=a, b=b, batched=True), dtype=float)


class _Stream:
    """Collects perturbed inputs and runs them through the model in batches of the bundle's size."""

    def __init__(self, scorer: "PerturbationScorer", softmax: bool):
        self.scorer, self.softmax = scorer, softmax
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.count = 0
        self.out: list[np.ndarray] = []

    def add(self, x: np.ndarray, labels: np.ndarray) -> None:
        self.pending.append((np.asarray(x, dtype=np.float32), labels))
        self.count += len(x)
        if self.count >= self.scorer.batch_size:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            x = np.concatenate([p[0] for p in self.pending])
            y = np.concatenate([p[1] for p in self.pending])
            self.out.append(self.scorer.outputs(x, y, self.softmax))
            self.pending, self.count = [], 0

    def result(self) -> np.ndarray:
        self.flush()
        return np.concatenate(self.out) if self.out else np.zeros(0, np.float32)


class PerturbationScorer:
    """The five faithfulness metrics for any number of maps of the same images, labels and model.

    ``images`` are uint8 (N×H×W×3) and are preprocessed through the bundle, as Quantus perturbs the model
    input. ``seed`` seeds every metric's random draws exactly as ``np.random.seed(seed)`` before a Quantus call
    would. Every method takes maps as an array M×N×H×W (or N×H×W for one map) and returns scores M×N.
    """

    def __init__(self, bundle: ModelBundle, images, labels: Sequence[int], seed: int = 0,
                 batch_size: int | None = None):
        self.bundle = bundle
        self.x = _inputs(bundle, images).astype(np.float32)
        self.n = len(self.x)
        self.y = _labels(bundle, labels, self.n)
        self.seed = check_seed(seed)
        self.batch_size = check_int("batch_size", batch_size, 1) if batch_size is not None else \
            max(32, bundle.resolved_batch_size())
        self.queries = 0
        self._segments: dict[int, list[np.ndarray]] = {}
        self._logits = self.outputs(self.x, self.y, softmax=False, all_classes=True)

    # -- model -------------------------------------------------------------------------------------------
    def outputs(self, x: np.ndarray, labels: np.ndarray, softmax: bool, all_classes: bool = False) -> np.ndarray:
        """The model's output (logit, or softmax probability) for each input's label, in batches."""
        res = []
        for start in range(0, len(x), self.batch_size):
            out = self.bundle.forward_inputs(torch.from_numpy(np.ascontiguousarray(x[start:start + self.batch_size])))
            if softmax:
                out = torch.softmax(out, dim=-1)
            out = out.numpy()
            res.append(out if all_classes else out[np.arange(len(out)), labels[start:start + self.batch_size]])
        self.queries += len(x)
        return np.concatenate(res)

    def _y_pred(self, softmax: bool) -> np.ndarray:
        z = torch.from_numpy(self._logits)
        out = torch.softmax(z, dim=-1) if softmax else z
        return out.numpy()[np.arange(self.n), self.y]

    def _maps(self, maps, name: str = "maps") -> np.ndarray:
        a = np.asarray(maps, dtype=float)
        if a.ndim == 3:
            a = a[None]
        if a.ndim != 4 or a.shape[1] != self.n or a.shape[2:] != self.x.shape[2:]:
            raise ValueError(f"{name} must be M×N×H×W with N = {self.n} and H×W = {self.x.shape[2:]}, got {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contain non-finite values")
        return a

    def _prepare(self, a: np.ndarray, absolute: bool) -> np.ndarray:
        """One map (N×H×W) as Quantus prepares it: normalised by its maximum, optionally |·|, broadcast to C."""
        quantus = _quantus()
        a = quantus.normalise_func.normalise_by_max(a[:, None], normalise_axes=[1, 2, 3])
        if absolute:
            a = np.abs(a)
        return np.broadcast_to(a, self.x.shape).reshape(self.n, -1)

    # -- metrics -----------------------------------------------------------------------------------------
    def faithfulness_correlation(self, maps, nr_runs: int = 100, subset_size: int = 224) -> np.ndarray:
        """Pearson correlation over ``nr_runs`` random subsets between the map's sum and the logit drop.

        The subsets and the drops are computed once and shared by every map (black fill = each image's
        minimum, Quantus' ``"black"``).
        """
        quantus = _quantus()
        maps = self._maps(maps)
        nr_runs, subset_size = check_int("nr_runs", nr_runs, 2), check_int("subset_size", subset_size, 1)
        flat = self.x.reshape(self.n, -1)
        nf = flat.shape[1]
        np.random.seed(self.seed)
        stream, indices = _Stream(self, softmax=False), []
        for _ in range(nr_runs):
            ix = np.stack([np.random.choice(nf, subset_size, replace=False) for _ in range(self.n)])
            xp = _replace(flat, ix, "black")
            stream.add(xp.reshape(self.x.shape), self.y)
            indices.append(ix)
        deltas = (self._y_pred(False)[None] - stream.result().reshape(nr_runs, self.n)).T  # N×runs
        indices = np.stack(indices, axis=1)  # N×runs×subset
        rows = np.arange(self.n)[:, None, None]
        scores = []
        for a in maps:
            sums = self._prepare(a, absolute=False)[rows, indices].sum(axis=-1)
            scores.append(_pearson_rows(sums, deltas))
        return np.asarray(scores, dtype=float)

    def faithfulness_estimate(self, maps, features_in_step: int = 224) -> np.ndarray:
        """Pearson correlation between the map's sum and the logit drop over steps of the map's own order."""
        quantus = _quantus()
        maps = self._maps(maps)
        step = check_int("features_in_step", features_in_step, 1)
        flat = self.x.reshape(self.n, -1)
        y_pred = self._y_pred(False)
        scores = []
        for a in maps:
            a = self._prepare(a, absolute=False)
            order = np.argsort(-a, axis=1)
            stream, sums = _Stream(self, softmax=False), []
            np.random.seed(self.seed)
            for s in range(math.ceil(a.shape[1] / step)):
                ix = order[:, s * step:(s + 1) * step]
                xp = _replace(flat, ix, "black")
                stream.add(xp.reshape(self.x.shape), self.y)
                sums.append(a[np.arange(self.n)[:, None], ix].sum(axis=-1))
            deltas = y_pred[:, None] - stream.result().reshape(-1, self.n).T
            scores.append(_pearson_rows(np.stack(sums, 1), deltas))
        return np.asarray(scores, dtype=float)

    def monotonicity_correlation(self, maps, features_in_step: int = 3136, nr_samples: int = 10) -> np.ndarray:
        """Spearman correlation between ``|map|`` sums and the output variance when steps are filled with noise."""
        quantus = _quantus()
        maps = self._maps(maps)
        step = check_int("features_in_step", features_in_step, 1)
        nr_samples = check_int("nr_samples", nr_samples, 1)
        flat = self.x.reshape(self.n, -1)
        y_pred = self._y_pred(True)
        inv = np.ones(self.n)
        big = np.abs(y_pred) >= 1e-12
        inv[big] = 1.0 / np.abs(y_pred[big])
        inv = inv ** 2
        scores = []
        for a in maps:
            a = self._prepare(a, absolute=True)
            order = np.argsort(a, axis=1)
            n_steps = math.ceil(a.shape[1] / step)
            np.random.seed(self.seed)
            stream, sums = _Stream(self, softmax=True), []
            for s in range(n_steps):
                ix = order[:, s * step:(s + 1) * step]
                for _ in range(nr_samples):
                    xp = _replace(flat, ix, "uniform")
                    stream.add(xp.reshape(self.x.shape), self.y)
                sums.append(a[np.arange(self.n)[:, None], ix].sum(axis=1))
            out = stream.result().reshape(n_steps, nr_samples, self.n)
            var = (np.mean((out - y_pred[None, None]) ** 2, axis=1) * inv[None]).T  # N×steps
            scores.append(_spearman_rows(np.stack(sums, 1), var))
        return np.asarray(scores, dtype=float)

    def segments(self, n_segments: int = 100) -> list[np.ndarray]:
        """SLIC superpixels of each (normalised) image, as Quantus' IROF computes them (``n_segments`` = SLIC's)."""
        if n_segments not in self._segments:
            self._segments[n_segments] = [slic(np.moveaxis(x, 0, -1).astype("double"), n_segments=n_segments,
                                               start_label=0) for x in self.x]
        return self._segments[n_segments]

    def irof(self, maps, n_segments: int = 100, normalised: bool = True) -> np.ndarray:
        """Area over the curve of p(class) / p0 as SLIC segments are replaced by the image's mean, per image.

        Quantus' IROF fills with the mean of the whole batch it is given; here each image is its own batch, so
        a score does not depend on its neighbours. ``normalised`` divides by the number of segments.
        """
        maps = self._maps(maps)
        segs = self.segments(check_int("n_segments", n_segments, 2))
        y_pred = self._y_pred(True)
        scores = np.zeros(maps.shape[:2])
        for m, a in enumerate(maps):
            a = self._prepare(a, absolute=False).reshape(self.x.shape)
            stream, sizes = _Stream(self, softmax=True), []
            for i in range(self.n):
                seg = segs[i]
                ids = np.unique(seg)
                means = np.array([a[i][:, seg == s].mean() for s in ids])
                xp = self.x[i:i + 1]
                for s in ids[np.argsort(-means)]:
                    # Quantus' "mean" fill of a batch of one: the mean of the image as perturbed so far
                    xp = np.where((seg == s)[None, None], xp.mean(), xp)
                    stream.add(xp, self.y[i:i + 1])
                sizes.append(len(ids))
            out = stream.result()
            start = 0
            for i, size in enumerate(sizes):
                curve = out[start:start + size] / y_pred[i]
                start += size
                aoc = size - np.trapezoid(curve, dx=1)
                scores[m, i] = aoc / size if normalised else aoc
        return scores

    def region_perturbation_curves(self, maps, patch_size: int = 14, regions: int = 100) -> np.ndarray:
        """Quantus' RegionPerturbation curve (M×N×regions): p0 − p after each of the map's hottest patches is
        replaced by uniform noise, cumulatively (morf order, patches of ``patch_size``)."""
        quantus = _quantus()
        from quantus.helpers import utils  # lazy: heavy import

        maps = self._maps(maps)
        patch = check_int("patch_size", patch_size, 1)
        regions = check_int("regions", regions, 1)
        y_pred = self._y_pred(True)
        ph, pw = utils.get_padding_size(self.x.shape[2], patch), utils.get_padding_size(self.x.shape[3], patch)
        padding = ((0, 0), (0, 0), ph, pw)
        axes = np.arange(4)
        x_pad0 = utils._pad_array(self.x, padding, mode="edge", padded_axes=axes)
        blocks = list(utils.get_block_indices(utils._pad_array(self.x, padding, mode="constant", padded_axes=axes),
                                              patch))
        patches = np.stack(blocks, 1)  # N×patches×features
        curves = []
        for a in maps:
            a = self._prepare(a, absolute=False).reshape(self.x.shape)
            a_pad = utils._pad_array(a, padding, mode="constant", padded_axes=axes).reshape(self.n, -1)
            sums = np.stack([a_pad[np.arange(self.n)[:, None], b].sum(axis=-1) for b in blocks], -1)
            order = np.argsort(-sums, -1)
            ordered = patches[np.arange(self.n)[:, None], order].transpose(1, 0, 2)
            np.random.seed(self.seed)
            stream, xp = _Stream(self, softmax=True), x_pad0
            for idx in ordered[:regions]:
                xp = _replace(xp.reshape(self.n, -1), idx, "uniform").reshape(x_pad0.shape)
                stream.add(xp[:, :, ph[0]:xp.shape[2] - ph[1], pw[0]:xp.shape[3] - pw[1]], self.y)
            curves.append((y_pred[None] - stream.result().reshape(-1, self.n)).T)
        return np.asarray(curves, dtype=float)

    def region_perturbation(self, maps, patch_size: int = 14, regions: int = 100) -> np.ndarray:
        """AOPC: the mean probability drop over the first ``regions`` patches, counting the unperturbed step
        (Samek et al. 2017, Eq. 12: ``sum(curve) / (regions + 1)``)."""
        curves = self.region_perturbation_curves(maps, patch_size, regions)
        return curves.sum(axis=-1) / (curves.shape[-1] + 1)

    def score(self, maps, settings: FaithfulnessSettings,
              metrics: Sequence[str] = FAITHFULNESS_METRICS) -> dict[str, np.ndarray]:
        """Every metric of ``metrics`` for the maps (M×N×H×W): ``{metric: scores M×N}``."""
        unknown = [m for m in metrics if m not in FAITHFULNESS_METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; choose from {list(FAITHFULNESS_METRICS)}")
        flat = np.asarray(maps)
        if flat.ndim >= 3 and flat.size and np.issubdtype(flat.dtype, np.number):
            flat = flat.reshape(*flat.shape[:-2], -1)
            zero = ~np.any(flat != 0, axis=-1)
            if zero.any():
                warnings.warn(f"maps: {int(zero.sum())} of {zero.size} maps are all zero: a map that ranks nothing "
                              f"has no defined correlation, and its scores are NaN where undefined", RuntimeWarning,
                              stacklevel=2)
        run = {
            "FaithfulnessCorrelation": lambda: self.faithfulness_correlation(maps, settings.fc_runs, settings.fc_subset),
            "FaithfulnessEstimate": lambda: self.faithfulness_estimate(maps, settings.fe_step),
            "MonotonicityCorrelation": lambda: self.monotonicity_correlation(maps, settings.mc_step,
                                                                             settings.mc_samples),
            "IROF": lambda: self.irof(maps, settings.irof_segments),
            "RegionPerturbation": lambda: self.region_perturbation(maps, settings.rp_patch, settings.rp_regions),
        }
        return {m: run[m]() for m in metrics}


@dataclass
class ChanceStudy:
    """Every method's scores beside the same metrics' scores for random maps (see :func:`score_with_chance`)."""

    scores: dict          # method -> metric -> per-image scores (or Failed / NotApplicable)
    null: dict            # random-map kind -> metric -> draws×N scores
    bands: dict           # random-map kind -> metric -> ChanceBand
    seconds: float
    queries: int

    def to_json(self) -> dict:
        return {"bands": {k: {m: b.as_dict() for m, b in per.items()} for k, per in self.bands.items()},
                "seconds": self.seconds, "queries": self.queries}


def score_with_chance(bundle: ModelBundle, images, labels: Sequence[int], maps: Mapping[str, object],
                      settings: FaithfulnessSettings, segments: Sequence[np.ndarray], n_random: int = 50,
                      keep: int | None = None, positive: bool = False, complexity: bool = True,
                      sufficiency: bool = True, seed: int = 0, progress: bool = False) -> ChanceStudy:
    """The faithfulness (and complexity, Sufficiency) table of ``maps`` with a chance band for every metric.

    ``n_random`` random maps of each kind (:data:`RANDOM_MAP_KINDS`: uniform pixels, and random values per
    segment of ``segments``, the granularity of LIME's maps, ``keep`` segments non-zero) are scored through the
    identical pipeline: the same images, perturbations, fill values and seeds (:class:`PerturbationScorer`).
    A method that could not run (:class:`gradlime_utils.metrics.quantus_bridge.Failed`) stays in the table. Sufficiency is
    :class:`gradlime_utils.metrics.quantus_bridge.NotApplicable` when no class repeats among the labels.
    """
    start = time.perf_counter()
    scorer = PerturbationScorer(bundle, images, labels, seed=seed)
    n, size = scorer.n, scorer.x.shape[2:]
    n_random = check_int("n_random", n_random, 2)
    runnable = {k: np.asarray(v, dtype=float) for k, v in maps.items() if not isinstance(v, (Failed, NotApplicable))}
    names = list(runnable)
    stacked = np.stack([runnable[k] for k in names]) if names else np.zeros((0, n, *size))
    nulls = {kind: random_maps(kind, n_random, (n, *size), segments=segments, keep=keep, positive=positive,
                               seed=derive_seed(seed, 1 + j)) for j, kind in enumerate(RANDOM_MAP_KINDS)}
    per_method: dict[str, dict] = {k: {} for k in maps}
    null: dict[str, dict] = {kind: {} for kind in nulls}
    extra = dict(complexity_metrics()) if complexity else {}
    not_applicable = sufficiency_applicability(labels) if sufficiency else None
    if sufficiency and not_applicable is None:
        extra["Sufficiency"] = sufficiency_metric()
    steps = [(metric, kind) for metric in (*FAITHFULNESS_METRICS, *extra) for kind in (None, *nulls)]
    for metric, kind in tqdm(steps, desc="faithfulness with chance bands", disable=not progress):
        target = stacked if kind is None else nulls[kind]
        if len(target) == 0:
            continue
        if metric in FAITHFULNESS_METRICS:
            with warnings.catch_warnings():  # empty maps are counted as undefined per method in the tables
                warnings.filterwarnings("ignore", message="maps: .* all zero", category=RuntimeWarning)
                result = scorer.score(target, settings, [metric])[metric]
        else:
            needs_model = metric == "Sufficiency"  # complexity reads the maps only
            result = score_many(target, {metric: extra[metric]}, scorer.y, bundle=bundle if needs_model else None,
                                   images=images if needs_model else None, seed=seed)[metric]
        if kind is None:
            for j, name in enumerate(names):
                per_method[name][metric] = result if isinstance(result, Failed) else result[j]
        else:
            null[kind][metric] = result
    for name, v in maps.items():
        if name not in runnable:
            per_method[name] = {m: v for m in (*FAITHFULNESS_METRICS, *extra)}
        if sufficiency and not_applicable is not None:
            per_method[name]["Sufficiency"] = not_applicable
    bands = {kind: {m: chance_band(v) for m, v in per.items() if not isinstance(v, Failed)}
             for kind, per in null.items()}
    return ChanceStudy(per_method, null, bands, time.perf_counter() - start, scorer.queries)


def matched_chance(bundle: ModelBundle, images, labels: Sequence[int], maps: Mapping[str, object],
                   cells: Mapping[str, Sequence[str]], settings: FaithfulnessSettings, count: int = 50,
                   seed: int = 0, progress: bool = False) -> dict[str, dict]:
    """Structure-matched chance bands for the given cells (method -> metrics): ``count`` draws of the method's
    own maps moved off their images (:func:`gradlime_utils.metrics.nulls.shifted_maps`: about the same values,
    sparsity and smoothness), scored through the identical pipeline. A map that is sparse (Grad-CAM after its
    ReLU, Guided Backprop) or smooth (an upsampled 7×7 layer) can lie outside the band of uniform random maps
    by its structure alone; against its own shifts it cannot. Returns method -> metric -> ChanceBand.

    Only cells already beyond their kind's band need this (:func:`gradlime_utils.experiments.ch04_evaluation.candidates`):
    the larger of the two p-values never marks a cell that the first left unmarked.
    """
    count = check_int("count", count, 2)
    unknown = [m for m in cells if m not in maps]
    if unknown:
        raise ValueError(f"cells names methods without maps: {unknown}")
    scorer = PerturbationScorer(bundle, images, labels, seed=seed)
    extra = dict(complexity_metrics())
    out: dict[str, dict] = {}
    for j, (method, metrics) in enumerate(tqdm(list(cells.items()), desc="structure-matched chance",
                                               disable=not progress)):
        draws = shifted_maps(np.asarray(maps[method], dtype=float), count, seed=derive_seed(seed, 7 + j))
        out[method] = {}
        for metric in metrics:
            with warnings.catch_warnings():  # an empty map stays empty when shifted: Quantus divides by 0
                warnings.simplefilter("ignore", RuntimeWarning)
                result = _score_matched(scorer, draws, metric, settings, extra, bundle, images, seed, method)
            if not isinstance(result, Failed):
                out[method][metric] = chance_band(result)
    return out


def _score_matched(scorer: PerturbationScorer, draws: np.ndarray, metric: str, settings: FaithfulnessSettings,
                   extra: dict, bundle: ModelBundle, images, seed: int, method: str):
    """One metric's per-image scores of a method's structure-matched draws (draws×N), or ``Failed``."""
    if metric in FAITHFULNESS_METRICS:
        return scorer.score(draws, settings, [metric])[metric]
    if metric in extra:
        return score_many(draws, {metric: extra[metric]}, scorer.y, seed=seed)[metric]
    if metric == "Sufficiency":
        return score_many(draws, {metric: sufficiency_metric()}, scorer.y, bundle=bundle, images=images,
                             seed=seed)[metric]
    raise ValueError(f"cells names an unknown metric {metric!r} for {method!r}")
