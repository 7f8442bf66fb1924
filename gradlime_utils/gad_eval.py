"""GAD's Tables 1 and 2: relative complexity counts and mean relative sensitivity over held-out images."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from .attributions import ATTRIBUTION_METHODS, SHORT_NAMES
from .gad import SupportModels, gad_map
from .hull_metrics import convex_hull_mask, relative_complexity, relative_sensitivity, supplementary_mask

# The paper's values (GAD, Tables 1 and 2; columns S, D, GxI, GB, IG), for printing beside ours.
PAPER_TABLE1 = {
    ("Cat×Dog", "VGG"): {"Orig.1": [357, 0, 15, 4, 17], "GAD 1": [155, 512, 490, 427, 480],
                         "Orig.2": [159, 0, 2, 3, 0], "GAD 2": [348, 512, 494, 428, 486]},
    ("Cat×Dog", "ResNet"): {"Orig.1": [122, 0, 2, 10, 7], "GAD 1": [390, 512, 492, 453, 497],
                            "Orig.2": [130, 0, 3, 5, 2], "GAD 2": [380, 512, 490, 460, 488]},
    ("Birds", "VGG"): {"Orig.1": [270, 0, 9, 0, 1], "GAD 1": [240, 511, 488, 450, 500],
                       "Orig.2": [301, 0, 10, 0, 0], "GAD 2": [210, 510, 494, 451, 504]},
    ("Birds", "ResNet"): {"Orig.1": [153, 0, 1, 0, 0], "GAD 1": [358, 512, 504, 472, 506],
                          "Orig.2": [174, 0, 2, 0, 0], "GAD 2": [337, 512, 506, 470, 504]},
}
PAPER_TABLE2 = {  # mean RS x 100
    ("Cat×Dog", "VGG"): {"Sup.1": [0.08, 0.0029, 0.0052, 0.11, 0.01], "GAD 1": [0.13, 0.0056, 0.12, 1.59, 0.13],
                         "Sup.2": [0.24, 0.0029, 0.0051, 0.15, 0.0096], "GAD 2": [0.25, 0.0062, 0.56, 1.82, 0.49]},
    ("Cat×Dog", "ResNet"): {"Sup.1": [0.06, 0.0013, 0.0016, 0.13, 0.0016], "GAD 1": [0.03, 0.0024, 0.07, 0.51, 0.12],
                            "Sup.2": [0.05, 0.0012, 0.0016, 0.10, 0.0020], "GAD 2": [0.07, 0.0024, 0.16, 0.47, 0.16]},
    ("Birds", "VGG"): {"Sup.1": [0.25, 0.0027, 0.08, 0.01, 0.01], "GAD 1": [0.20, 0.0056, 0.54, 1.28, 0.55],
                       "Sup.2": [0.15, 0.0030, 0.0092, 0.01, 0.0072], "GAD 2": [0.13, 0.0068, 0.36, 1.41, 0.38]},
    ("Birds", "ResNet"): {"Sup.1": [0.11, 0.0020, 0.0045, 0.01, 0.0094], "GAD 1": [0.04, 0.0048, 0.17, 1.03, 0.29],
                          "Sup.2": [0.05, 0.0019, 0.0037, 0.01, 0.0026], "GAD 2": [0.05, 0.0048, 0.16, 1.04, 0.20]},
}


@dataclass
class GadRecord:
    """One image, one class, one method: the hull areas, RC and the two RS values."""

    image: int
    label: int
    target: int
    method: str
    area_orig: int
    area_gad: int
    area_sup: int
    rc: float
    rs_gad: float
    rs_sup: float


def evaluate_gad(support: SupportModels, images: np.ndarray, labels: np.ndarray,
                 methods: Sequence[str] = ATTRIBUTION_METHODS, keep: float = 0.5, combine: str = "min",
                 progress: bool = True) -> list[GadRecord]:
    """RC (Eq. 1) and RS (Eq. 2) for every image, both classes and every method."""
    from tqdm.auto import tqdm

    records = []
    for method in tqdm(methods, desc="GAD evaluation", disable=not progress):
        for target in (0, 1):
            maps = gad_map(support, images, target, method, combine=combine, keep=keep)
            hulls_o = [convex_hull_mask(m, keep) for m in maps.original]
            hulls_g = [convex_hull_mask(m, keep) for m in maps.gad]
            gad_masks = np.stack([h.mask for h in hulls_g])
            sup_masks = np.stack([supplementary_mask(o, g) for o, g in zip(hulls_o, hulls_g)])
            rs_gad = relative_sensitivity(support.bundle, images, gad_masks, target)
            rs_sup = relative_sensitivity(support.bundle, images, sup_masks, target)
            for i, (ho, hg) in enumerate(zip(hulls_o, hulls_g)):
                records.append(GadRecord(image=i, label=int(labels[i]), target=target, method=method,
                                         area_orig=ho.area, area_gad=hg.area, area_sup=int(sup_masks[i].sum()),
                                         rc=relative_complexity(hg, ho), rs_gad=float(rs_gad[i]),
                                         rs_sup=float(rs_sup[i])))
    return records


def table1(records: Sequence[GadRecord], methods: Sequence[str] = ATTRIBUTION_METHODS) -> dict[str, list[int]]:
    """Counts per class (1 and 2 = targets 0 and 1): Orig (RC > 1), GAD (RC < 1), tie/undefined."""
    rows = {}
    for target in (0, 1):
        k = target + 1
        for name, test in ((f"Orig.{k}", lambda rc: rc > 1), (f"GAD {k}", lambda rc: rc < 1),
                           (f"tie/undef {k}", lambda rc: not (rc > 1 or rc < 1))):
            rows[name] = [sum(1 for r in records if r.method == m and r.target == target and test(r.rc))
                          for m in methods]
    return rows


def table2(records: Sequence[GadRecord], methods: Sequence[str] = ATTRIBUTION_METHODS) -> dict[str, list[float]]:
    """Mean RS x 100 per class for the supplementary and GAD masks (NaN, i.e. empty masks, excluded)."""
    rows = {}
    for target in (0, 1):
        k = target + 1
        for name, field in ((f"Sup.{k}", "rs_sup"), (f"GAD {k}", "rs_gad")):
            row = []
            for m in methods:
                values = np.array([getattr(r, field) for r in records if r.method == m and r.target == target])
                row.append(float(np.nanmean(values) * 100) if np.isfinite(values).any() else float("nan"))
            rows[name] = row
    return rows


def undefined_rs_counts(records: Sequence[GadRecord], methods: Sequence[str] = ATTRIBUTION_METHODS) -> dict:
    """How many RS values were undefined (empty mask) per row of Table 2: reported, never silently dropped."""
    return {f"{kind}.{t + 1}": [sum(1 for r in records if r.method == m and r.target == t
                                    and not np.isfinite(getattr(r, f"rs_{kind.lower()}"))) for m in methods]
            for kind in ("Sup", "GAD") for t in (0, 1)}


def format_table(rows: dict, methods: Sequence[str] = ATTRIBUTION_METHODS, paper: dict | None = None,
                 width: int = 10) -> str:
    """A plain-text table; with ``paper``, each of our rows is followed by the paper's."""
    def cell(v) -> str:
        return f"{v:>{width}.3g}" if isinstance(v, float) else f"{v:>{width}}"

    lines = [f"{'':<14}" + "".join(f"{SHORT_NAMES[m]:>{width}}" for m in methods)]
    for name, values in rows.items():
        lines.append(f"{name:<14}" + "".join(cell(v) for v in values))
        if paper and name in paper:
            lines.append(f"{'  paper':<14}" + "".join(cell(float(v)) for v in paper[name]))
    return "\n".join(lines)


def records_to_rows(records: Sequence[GadRecord]) -> list[dict]:
    return [asdict(r) for r in records]
