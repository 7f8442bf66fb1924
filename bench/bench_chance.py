"""Benchmark: what a chance band costs, with and without shared perturbations.

On the evaluation chapter's four photos (EfficientNet-Lite0, 224 px) and its quick metric settings, prints,
measured in this run:

1. FaithfulnessCorrelation for K random maps: K Quantus calls (each seeded, so each re-draws the same subsets
   and re-queries the model) vs one call of the shared-perturbation scorer (the subsets' outputs computed once):
   the time ratio, and the largest score difference (the scorer uses the ONNX Runtime engine, so differences
   are float32 rounding, about 1e-6);
2. per map, the time of each order-dependent metric (FaithfulnessEstimate, MonotonicityCorrelation, IROF,
   RegionPerturbation) through the scorer, and Quantus' time for the same metric and map where Quantus computes
   the same thing (its batched IROF does not: it couples the images, see the faithfulness module);
3. the model queries per random map of each metric, the quantity a chance band multiplies.

Usage: python bench/bench_chance.py [--maps 5]
"""
from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")

import argparse
import time
import warnings

import numpy as np
import torch

import gradlime_utils as gu
from gradlime_utils.metrics import faithfulness as fa
from gradlime_utils.metrics import quantus_bridge as qb
from gradlime_utils.metrics import nulls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=5, help="random maps K (default 5)")
    args = parser.parse_args()
    bundle = gu.load_model("efficientnet_lite0", device="cpu")
    images = np.stack([gu.load_image(n, size=224) for n in ("chelsea", "coffee", "astronaut", "rocket")])
    labels = bundle.predict_proba(images).argmax(axis=1)
    settings = fa.FaithfulnessSettings.for_profile("quick", 224)
    maps = nulls.random_maps("uniform", args.maps, (4, 224, 224), seed=1)
    q = qb._quantus()
    x = qb._inputs(bundle, images)
    kw = {"disable_warnings": True, "display_progressbar": False}

    def quantus(metric, a):
        np.random.seed(0)
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(metric(model=bundle.model, x_batch=x, y_batch=labels, a_batch=a[:, None], device="cpu",
                                     channel_first=True), dtype=float)

    fc = q.FaithfulnessCorrelation(nr_runs=settings.fc_runs, subset_size=settings.fc_subset, perturb_baseline="black",
                                   abs=False, return_aggregate=False,
                                   similarity_func=q.similarity_func.correlation_pearson, **kw)
    start = time.perf_counter()
    theirs = np.stack([quantus(fc, a) for a in maps])
    t_quantus = time.perf_counter() - start
    scorer = fa.PerturbationScorer(bundle, images, labels, seed=0)
    start = time.perf_counter()
    ours = scorer.faithfulness_correlation(maps, settings.fc_runs, settings.fc_subset)
    t_ours = time.perf_counter() - start
    print(f"1. FaithfulnessCorrelation, {args.maps} random maps x 4 photos: Quantus {t_quantus:.1f} s, shared "
          f"perturbations {t_ours:.1f} s: ratio {t_quantus / t_ours:.1f}x; largest score difference "
          f"{np.abs(theirs - ours).max():.1e}")
    one = maps[:1]
    # Quantus wants the step to divide H x W, so both sides use steps of 3,136 features here (48 steps, not the
    # quick profile's 16) and do the same work
    settings = fa.FaithfulnessSettings(settings.fc_runs, settings.fc_subset, 3136, 3136, settings.mc_samples,
                                       settings.rp_patch, settings.rp_regions, settings.irof_segments)
    pearson, spearman = q.similarity_func.correlation_pearson, q.similarity_func.correlation_spearman
    quantus_metric = {
        "FaithfulnessEstimate": q.FaithfulnessEstimate(features_in_step=settings.fe_step, perturb_baseline="black",
                                                       similarity_func=pearson, **kw),
        "MonotonicityCorrelation": q.MonotonicityCorrelation(nr_samples=settings.mc_samples,
                                                             features_in_step=settings.mc_step,
                                                             perturb_baseline="uniform", similarity_func=spearman, **kw),
        "RegionPerturbation": q.RegionPerturbation(patch_size=settings.rp_patch, regions_evaluation=settings.rp_regions,
                                                   perturb_baseline="uniform", normalise=True, **kw),
    }
    print("2./3. per random map (4 photos):")
    for metric in ("FaithfulnessEstimate", "MonotonicityCorrelation", "IROF", "RegionPerturbation"):
        before = scorer.queries
        start = time.perf_counter()
        scorer.score(one, settings, [metric])
        t_ours, queries = time.perf_counter() - start, scorer.queries - before
        line = f"   {metric:<24} scorer {t_ours:5.2f} s, {queries} queries"
        if metric in quantus_metric:
            start = time.perf_counter()
            quantus(quantus_metric[metric], one[0])
            t_q = time.perf_counter() - start
            line += f"; Quantus {t_q:5.2f} s (ratio {t_q / t_ours:.1f}x)"
        print(line)


if __name__ == "__main__":
    main()
