"""One module per chapter, named like its notebook (``ch03_gad`` for ``03_gad.ipynb``): the chapter's studies,
tables and figure grids, built from the methods and metrics, and its scale in each profile (``SIZES``).
"""
from __future__ import annotations

import importlib

#: Chapter (notebook name) -> its module here; chapter 00 has no experiments, only its scale (``ch00_setup``).
CHAPTER_MODULES = {
    "00_setup_and_models": "ch00_setup",
    "01_lime": "ch01_lime",
    "02_gradlime": "ch02_gradlime",
    "03_gad": "ch03_gad",
    "04_evaluation": "ch04_evaluation",
    "05_evolime": "ch05_evolime",
    "06_normlime": "ch06_normlime",
    "07_lime_heatmap_vs_gradcam": "ch07_heatmap",
}


def chapter_sizes(chapter: str):
    """The :class:`gradlime_utils.runtime.Sizes` of ``chapter`` (its notebook's name); ``ValueError`` for an
    unknown chapter."""
    if chapter not in CHAPTER_MODULES:
        raise ValueError(f"chapter must be one of {sorted(CHAPTER_MODULES)}, got {chapter!r}")
    return importlib.import_module(f"{__name__}.{CHAPTER_MODULES[chapter]}").SIZES
