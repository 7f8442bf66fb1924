"""Benchmark: the time of each GAD stage in the quick profile, and the memory peak, measured in one run.

Stages: the original classifier (trained or loaded), support training per alpha (forced to retrain in a
fresh cache), attributions per method (per image, 5 models, both classes), hulls and RC, RS; then the
whole evaluation of Tables 1-2. Prints the peak resident memory of the process.

Usage: python bench/bench_gad.py [--per-class 256]
"""
from __future__ import annotations

import os
import tempfile

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ["GRADLIME_CACHE"] = tempfile.mkdtemp(prefix="bench-gad-")  # measure training, not the cache

import argparse
import resource
import time

import numpy as np

import gradlime_utils as gu
from gradlime_utils.methods.attributions import ATTRIBUTION_METHODS
from gradlime_utils.methods.gad import gad_map, train_support_models
from gradlime_utils.experiments.ch03_gad import evaluate_gad
from gradlime_utils.metrics.hull import convex_hull_mask, relative_complexity, relative_sensitivity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=256)
    args = parser.parse_args()
    split = {"test_fraction": 0.52, "seed": 0}
    t0 = time.perf_counter()
    bundle = gu.load_model("mnist_cnn", device="cpu", progress=False, **split)
    print(f"original classifier (trained): {time.perf_counter() - t0:.1f} s, accuracy {bundle.info['test_accuracy']:.3f}")
    train = gu.load_binary_dataset("mnist_3_vs_8", "train", **split)
    test = gu.load_binary_dataset("mnist_3_vs_8", "test", max_per_class=args.per_class, **split)
    images, labels = test.images(), test.labels
    n = len(images)

    support = None
    for k, alpha in enumerate((2, 4, 6, 8)):
        t0 = time.perf_counter()
        support = train_support_models(bundle, train.images(), train.labels, alphas=(2, 4, 6, 8)[: k + 1],
                                       dataset_name="bench", progress=False)
        print(f"support training alpha={alpha}: {time.perf_counter() - t0:.1f} s (earlier alphas loaded from cache)")

    for method in ATTRIBUTION_METHODS:
        t0 = time.perf_counter()
        maps = [gad_map(support, images, t, method) for t in (0, 1)]
        dt = time.perf_counter() - t0
        print(f"attributions {method:<21}: {dt:6.1f} s = {1e3 * dt / n:6.1f} ms per image (5 models, 2 classes)")
    t0 = time.perf_counter()
    hulls = [(convex_hull_mask(o), convex_hull_mask(g)) for m in maps for o, g in zip(m.original, m.gad)]
    rc = [relative_complexity(g, o) for o, g in hulls]
    t_hull = time.perf_counter() - t0
    t0 = time.perf_counter()
    relative_sensitivity(bundle, images, np.stack([g.mask for _, g in hulls[:n]]), 0)
    t_rs = time.perf_counter() - t0
    print(f"hulls + RC: {1e3 * t_hull / len(hulls):.2f} ms per map pair; RS: {1e3 * t_rs / n:.3f} ms per image "
          f"({np.isfinite(rc).sum()} defined RC values)")

    t0 = time.perf_counter()
    evaluate_gad(support, images, labels, progress=False)
    print(f"whole Tables 1-2 evaluation ({n} images, 5 methods, 2 classes): {time.perf_counter() - t0:.1f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MB")


if __name__ == "__main__":
    main()
