"""GAD's Tables 1 and 2 (relative complexity counts, mean relative sensitivity) and their null control.

Every number is computed for the real support models and for the shuffled-label null
(:func:`gradlime_utils.methods.gad.train_support_models` with ``null="shuffled_labels"``) by the identical pipeline,
under both hull rules, so that a reader can see whether a table says something about GAD or about the hulls.
"""
from __future__ import annotations

import csv
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from gradlime_utils.data.datasets import load_binary_dataset
from gradlime_utils.data.models import load_model
from gradlime_utils.methods.attributions import ATTRIBUTION_METHODS, SHORT_NAMES
from gradlime_utils.methods.gad import (SupportModels, combine_maps, gad_map, train_binary_classifier,
                                        train_support_models)
from gradlime_utils.metrics.hull import (HULL_RULES, OCCLUSIONS, convex_hull_mask, relative_complexity,
                                         relative_sensitivity, share_on_object, supplementary_mask)
from gradlime_utils.metrics.nulls import ALPHA, decide_intervals, paired_difference, welch_difference
from gradlime_utils.plotting import CMAPS, NBSP, finish_figure, save_figure
from gradlime_utils.runtime import Size, Sizes, progress_bar as tqdm
from gradlime_utils.validation import check_int, derive_seed


def _paper_tables() -> tuple[dict, dict]:
    """The paper's values (GAD, Tables 1 and 2; columns S, D, GxI, GB, IG), for printing beside ours: kept as data
    in ``paper_tables.json``, keyed here by (dataset, model) -> row -> five values."""
    data = json.loads((Path(__file__).parent / "paper_tables.json").read_text(encoding="utf-8"))
    return tuple({(b["dataset"], b["model"]): {k: v for k, v in b.items() if k not in ("dataset", "model")}
                  for b in data[name]} for name in ("table1", "table2"))


PAPER_TABLE1, PAPER_TABLE2 = _paper_tables()  # Table 2: mean RS x 100


# Hull rules as the chapter runs them: the tables' rule (GAD §6, top half of the non-zero pixels) and Figure 4's
# rule (pixels above 10% of the maximum); rule -> keep.
HULL_RULE_SETTINGS = {"top_fraction": 0.5, "fraction_of_max": 0.1}
MODELS = ("real", "null")

#: The chapter's scale in each profile (smoke / quick / paper); the notebook's ``sizes`` parameter overrides by name.
SIZES = Sizes(
    alphas=Size([2, 4, 6, 8], [2, 4, 6, 8], [2, 4, 6, 8], "the distancing schedule: one support model per alpha"),
    per_class=Size(12, 256, 256, "test images per class (256: the paper's 512 images)"),
    epochs=Size(1, 10, 10, "support-model training epochs"),
    trainings=Size(2, 2, 3, "support-model trainings per arm, each with its own seed"),
    classifier_epochs=Size(1, 3, 3, "paper: epochs fine-tuning the ImageNet network into f0"),
    n_boot=Size(200, 2000, 2000, "bootstrap resamples of the images (intervals over images only)"),
    shown=Size(4, 6, 6, "images drawn in Figure 5"),
)


@dataclass
class GadRecord:
    """One image, one class, one method, one set of support models, one hull rule, one occlusion colour.

    ``model`` is "real" (GAD's support models) or "null" (the shuffled-label control); the original model is the
    same for both. ``training`` numbers the trainings of one arm (support models trained with different seeds). ``on_object_*`` is the share of the hull's points on the object (NaN without object masks);
    ``area_object`` the area of the object's own convex hull, for scale.
    """

    image: int
    label: int
    target: int
    method: str
    model: str
    rule: str
    occlusion: str
    area_orig: int
    area_gad: int
    area_sup: int
    area_object: int
    rc: float
    rs_gad: float
    rs_sup: float
    on_object_orig: float
    on_object_gad: float
    training: int = 0  # which training of this arm's support models (0 = the first seed)


def _as_supports(supports) -> dict[str, list[SupportModels]]:
    """``supports`` as arm -> list of trainings (a single :class:`SupportModels` is a list of one)."""
    if isinstance(supports, SupportModels):
        supports = {"real": supports}
    if not isinstance(supports, Mapping):
        raise TypeError(f"supports must be SupportModels or a mapping of arms, got {type(supports).__name__}")
    supports = {k: [v] if isinstance(v, SupportModels) else list(v) for k, v in supports.items()}
    if not supports or set(supports) - set(MODELS):
        raise ValueError(f"supports must be SupportModels or a mapping with keys from {MODELS}, got {list(supports)}")
    for arm, trainings in supports.items():
        if not trainings or not all(isinstance(s, SupportModels) for s in trainings):
            raise TypeError(f"supports[{arm!r}] must be SupportModels or a non-empty list of them")
    bundles = {id(s.bundle.model) for trainings in supports.values() for s in trainings}
    if len(bundles) != 1:
        raise ValueError("the real and null support models must share one original model")
    return supports


def evaluate_gad(supports, images: np.ndarray, labels: np.ndarray, methods: Sequence[str] = ATTRIBUTION_METHODS,
                 hull_rules: Mapping[str, float] | None = None, combine: str = "min", keep: float = 0.5,
                 baseline: str = "black", occlusions: Sequence[str] = ("black",), objects: np.ndarray | None = None,
                 progress: bool = True) -> list[GadRecord]:
    """RC (GAD Eq. 1) and RS (Eq. 2) for every image, both classes, every method, hull rule and occlusion.

    ``supports``: the real :class:`SupportModels`, or ``{"real": ..., "null": ...}`` to evaluate the null control
    through the identical pipeline (the original model's maps are computed once and shared); each arm may be a
    list of trainings with different seeds, so that :func:`null_comparison` can put the retrain inside its
    interval. ``hull_rules``:
    rule -> keep (default :data:`HULL_RULE_SETTINGS`). ``keep`` is the combine rule's fraction for
    ``combine="intersection"``. ``objects``: N×H×W boolean object masks (for MNIST: the digit's ink), to report
    how many hull points lie on the object.
    """
    supports = _as_supports(supports)
    hull_rules = dict(HULL_RULE_SETTINGS if hull_rules is None else hull_rules)
    for rule in hull_rules:
        if rule not in HULL_RULES:
            raise ValueError(f"hull_rules keys must be from {HULL_RULES}, got {rule!r}")
    for occ in occlusions:
        if occ not in OCCLUSIONS:
            raise ValueError(f"occlusions must be from {tuple(OCCLUSIONS)}, got {occ!r}")
    methods = _methods(methods)
    images, labels = np.asarray(images), np.asarray(labels)
    if labels.dtype.kind not in "iu" or not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be the binary classes 0 and 1, got {np.unique(labels).tolist()}")
    if images.ndim != 4 or len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"images must be a non-empty N×H×W×3 batch with one label each, got {images.shape} "
                         f"and {labels.shape}")
    if objects is not None:
        objects = np.asarray(objects, dtype=bool)
        if objects.shape != images.shape[:3]:
            raise ValueError(f"objects must have shape {images.shape[:3]}, got {objects.shape}")
        object_areas = [convex_hull_mask(o.astype(float), 1.0).area for o in objects]
    else:
        object_areas = [0] * len(images)
    nan = float("nan")
    bundle = next(iter(supports.values()))[0].bundle
    records = []
    jobs = [(m, t) for m in methods for t in (0, 1)]
    for method, target in tqdm(jobs, desc="GAD evaluation", disable=not progress):
        original = None
        for model, training, support in ((m, k, s) for m, ss in supports.items() for k, s in enumerate(ss)):
            maps = gad_map(support, images, target, method, combine=combine, keep=keep, baseline=baseline,
                           original=original)
            original = maps.original
            for rule, rule_keep in hull_rules.items():
                hulls_o = [convex_hull_mask(m, rule_keep, rule) for m in maps.original]
                hulls_g = [convex_hull_mask(m, rule_keep, rule) for m in maps.gad]
                gad_masks = np.stack([h.mask for h in hulls_g])
                sup_masks = np.stack([supplementary_mask(o, g) for o, g in zip(hulls_o, hulls_g)])
                for occ in occlusions:
                    rs_gad = relative_sensitivity(bundle, images, gad_masks, target, occ)
                    rs_sup = relative_sensitivity(bundle, images, sup_masks, target, occ)
                    for i, (ho, hg) in enumerate(zip(hulls_o, hulls_g)):
                        records.append(GadRecord(
                            image=i, label=int(labels[i]), target=target, method=method, model=model, rule=rule,
                            occlusion=occ, area_orig=ho.area, area_gad=hg.area, area_sup=int(sup_masks[i].sum()),
                            area_object=int(object_areas[i]), rc=relative_complexity(hg, ho),
                            rs_gad=float(rs_gad[i]), rs_sup=float(rs_sup[i]),
                            on_object_orig=share_on_object(ho.points, objects[i]) if objects is not None else nan,
                            on_object_gad=share_on_object(hg.points, objects[i]) if objects is not None else nan,
                            training=training))
    return records


def _select(records: Sequence[GadRecord], **fields) -> list[GadRecord]:
    """Records matching ``fields``; ``occlusion=None`` picks the first occlusion (RC does not depend on it). The
    tables are the first training's (``training=0``) unless ``training`` is given (``None``: every training).
    A model, rule or occlusion that the records do not hold is an error naming what they hold, never an empty
    table."""
    for name in ("model", "rule", "occlusion", "method"):
        value = fields.get(name)
        held = sorted({getattr(r, name) for r in records})
        if value is not None and records and value not in held:
            raise ValueError(f"{name} {value!r} is not in the records, which hold {held}")
    fields.setdefault("training", 0)
    if fields["training"] is None:
        del fields["training"]
    if fields.get("occlusion", "") is None:
        fields["occlusion"] = records[0].occlusion if records else None
    return [r for r in records if all(getattr(r, k) == v for k, v in fields.items())]


def _methods(methods) -> list[str]:
    """A list of method ids, never a bare string split into letters."""
    if isinstance(methods, str):
        raise TypeError(f"methods must be a list of method ids, got the string {methods!r}")
    return list(methods)


def table1(records: Sequence[GadRecord], methods: Sequence[str] = ATTRIBUTION_METHODS, model: str = "real",
           rule: str = "top_fraction") -> dict[str, list[int]]:
    """Counts per class (1 and 2 = targets 0 and 1): Orig (RC > 1), GAD (RC < 1), tie/undefined."""
    methods = _methods(methods)
    chosen = _select(records, model=model, rule=rule, occlusion=None)
    rows = {}
    for target in (0, 1):
        k = target + 1
        for name, test in ((f"Orig.{k}", lambda rc: rc > 1), (f"GAD {k}", lambda rc: rc < 1),
                           (f"tie/undef {k}", lambda rc: not (rc > 1 or rc < 1))):
            rows[name] = [sum(1 for r in chosen if r.method == m and r.target == target and test(r.rc))
                          for m in methods]
    return rows


def table2(records: Sequence[GadRecord], methods: Sequence[str] = ATTRIBUTION_METHODS, model: str = "real",
           rule: str = "top_fraction", occlusion: str = "black") -> dict[str, list[float]]:
    """Mean RS x 100 per class for the supplementary and GAD masks (NaN, i.e. empty masks, excluded)."""
    methods = _methods(methods)
    chosen = _select(records, model=model, rule=rule, occlusion=occlusion)
    rows = {}
    for target in (0, 1):
        k = target + 1
        for name, field in ((f"Sup.{k}", "rs_sup"), (f"GAD {k}", "rs_gad")):
            row = []
            for m in methods:
                values = np.array([getattr(r, field) for r in chosen if r.method == m and r.target == target])
                row.append(float(np.nanmean(values) * 100) if np.isfinite(values).any() else float("nan"))
            rows[name] = row
    return rows


def undefined_rs_counts(records: Sequence[GadRecord], methods: Sequence[str] = ATTRIBUTION_METHODS,
                        model: str = "real", rule: str = "top_fraction", occlusion: str = "black") -> dict:
    """How many RS values were undefined (empty mask) per row of Table 2: reported, never silently dropped."""
    chosen = _select(records, model=model, rule=rule, occlusion=occlusion)
    return {f"{kind}.{t + 1}": [sum(1 for r in chosen if r.method == m and r.target == t
                                    and not np.isfinite(getattr(r, f"rs_{kind.lower()}"))) for m in methods]
            for kind in ("Sup", "GAD") for t in (0, 1)}


def _per_image(records: Sequence[GadRecord], value) -> np.ndarray:
    """One value per image (records sorted by image index), as floats."""
    ordered = sorted(records, key=lambda r: r.image)
    return np.array([value(r) for r in ordered], dtype=float)


def null_comparison(records: Sequence[GadRecord], methods: Sequence[str] = ATTRIBUTION_METHODS,
                    rule: str = "top_fraction", occlusion: str = "black", n_boot: int = 2000,
                    seed: int = 0, alpha: float = ALPHA) -> list[dict]:
    """Real vs null support models, per method and class, on the statistic behind each table, with the training
    seed inside the interval.

    Table 1: the share of images whose GAD hull is smaller (RC < 1; ties and undefined hulls count as not
    smaller, as in the counts). Table 2: the mean over images of RS(GAD) - RS(Sup) × 100 (GAD's claim is that
    it is positive; pairs with an empty mask are undefined and counted, not averaged). Each arm's statistic is
    computed once per training of its support models, and real - null gets Welch's 95% interval over those
    trainings (:func:`gradlime_utils.metrics.nulls.welch_difference`): an interval over images with the trained
    models held fixed calls two real runs that differ only in their training seed "different" far too often.
    With one training per arm there is no such interval and the verdict is "undefined". The verdicts of one
    call (one family: both tables × methods × classes) are controlled for multiplicity by
    Benjamini-Hochberg over the Welch p-values. ``n_boot`` and ``seed`` are kept for the per-image interval of
    the first trainings (``images_ci``), shown for contrast only.
    """
    rows = []
    stats = (("Table 1", "share of images with RC < 1", lambda r: float(r.rc < 1), 1.0),
             ("Table 2", "mean RS(GAD) - RS(Sup), x100", lambda r: r.rs_gad - r.rs_sup, 100.0))
    for table, statistic, value, scale in stats:
        occ = None if table == "Table 1" else occlusion
        for method in methods:
            for target in (0, 1):
                per = {}
                for model in MODELS:
                    chosen = _select(records, model=model, rule=rule, occlusion=occ, method=method, target=target,
                                     training=None)
                    trainings = sorted({r.training for r in chosen})
                    per[model] = [_per_image([r for r in chosen if r.training == k], value) for k in trainings]
                if not per["real"] or not per["null"] or {len(v) for v in per["real"] + per["null"]} != \
                        {len(per["real"][0])}:
                    raise ValueError(f"records need real and null rows on the same images for {method}, class "
                                     f"{target + 1}, rule {rule}")
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # a training undefined on every image: NaN
                    means = {m: np.array([np.nanmean(v) * scale for v in per[m]]) for m in MODELS}
                seeds = welch_difference(means["real"], means["null"])
                images = paired_difference(per["real"][0], per["null"][0], n_boot, seed, scale)
                undefined = {m: int(np.sum([np.isnan(v).sum() for v in per[m]])) for m in MODELS}
                rows.append({"table": table, "statistic": statistic, "method": SHORT_NAMES.get(method, method),
                             "class": target + 1, "rule": rule, "occlusion": occ or "-",
                             "real": float(np.nanmean(means["real"])), "null": float(np.nanmean(means["null"])),
                             "trainings": [len(per["real"]), len(per["null"])],
                             "real_by_training": means["real"].tolist(), "null_by_training": means["null"].tolist(),
                             "difference": seeds.difference, "ci_low": seeds.low, "ci_high": seeds.high,
                             "p": seeds.p, "undefined": [undefined["real"], undefined["null"]],
                             "images_ci": [images.low, images.high]})
    verdicts, _, adjusted = decide_intervals([r["p"] for r in rows], [r["difference"] for r in rows], alpha,
                                             favour="GAD beyond null", against="null beyond GAD")
    for r, v, a in zip(rows, verdicts, adjusted):
        r["p_adjusted"], r["verdict"] = float(a), v
    return rows


def rs_paired(records: Sequence[GadRecord], methods: Sequence[str] = ATTRIBUTION_METHODS, model: str = "real",
              rule: str = "top_fraction", occlusion: str = "black") -> list[dict]:
    """RS(GAD) against RS(Sup) on the same image (Table 2's claim, paired): share of defined pairs where GAD's is
    larger, the Wilcoxon signed-rank p-value (NaN below 6 pairs or when all differences are 0), and how many
    pairs are undefined (an empty GAD or supplementary mask)."""
    rows = []
    for method in methods:
        for target in (0, 1):
            chosen = _select(records, model=model, rule=rule, occlusion=occlusion, method=method, target=target)
            gad, sup = _per_image(chosen, lambda r: r.rs_gad), _per_image(chosen, lambda r: r.rs_sup)
            ok = np.isfinite(gad) & np.isfinite(sup)
            d = gad[ok] - sup[ok]
            p = float("nan")
            if ok.sum() >= 6 and np.any(d != 0):
                p = float(wilcoxon(gad[ok], sup[ok]).pvalue)
            rows.append({"method": SHORT_NAMES.get(method, method), "class": target + 1, "model": model,
                         "rule": rule, "occlusion": occlusion, "pairs": int(ok.sum()), "undefined": int((~ok).sum()),
                         "share_gad_greater": float((d > 0).mean()) if ok.any() else float("nan"),
                         "wilcoxon_p": p})
    return rows


def on_object_shares(records: Sequence[GadRecord], methods: Sequence[str] = ATTRIBUTION_METHODS,
                     model: str = "real", rule: str = "top_fraction") -> list[dict]:
    """Per method: the mean share of hull points on the object (original and GAD hulls) and the mean hull
    areas beside the object's own hull: does a hull describe the object or the frame?"""
    rows = []
    for method in methods:
        chosen = _select(records, model=model, rule=rule, occlusion=None, method=method)

        def mean(field: str) -> float:
            values = np.array([getattr(r, field) for r in chosen], dtype=float)
            return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

        rows.append({"method": SHORT_NAMES.get(method, method), "model": model, "rule": rule,
                     "on_object_orig": mean("on_object_orig"), "on_object_gad": mean("on_object_gad"),
                     "area_orig": mean("area_orig"), "area_gad": mean("area_gad"),
                     "area_object": mean("area_object")})
    return rows


def records_to_rows(records: Sequence[GadRecord]) -> list[dict]:
    return [asdict(r) for r in records]


# ---------------------------------------------------------------------------------------------------------
# reporting: tables as DataFrames, the reading in words, the JSON the ledger reads


def tables_frame(records: Sequence[GadRecord], table: str = "1", rule: str = "top_fraction",
                 occlusion: str = "black", methods: Sequence[str] = ATTRIBUTION_METHODS,
                 paper: dict | None = None):
    """Table 1 (counts) or Table 2 (mean RS × 100) as a DataFrame: the real rows, the null rows beneath them, and
    the paper's values (``paper``: a block of :data:`PAPER_TABLE1` / :data:`PAPER_TABLE2`) where given."""
    if table not in ("1", "2"):
        raise ValueError(f"table must be '1' or '2', got {table!r}")
    frames = []
    for model in sorted({r.model for r in records}, key=MODELS.index):
        rows = table1(records, methods, model, rule) if table == "1" else table2(records, methods, model, rule,
                                                                                   occlusion)
        frames.append(pd.DataFrame(rows, index=[SHORT_NAMES[m] for m in methods]).T.assign(model=model))
    if paper:
        frames.append(pd.DataFrame(paper, index=[SHORT_NAMES[m] for m in methods]).T.assign(model="paper"))
    frame = pd.concat(frames)
    frame.index.name = "row"
    frame = frame.reset_index().set_index(["model", "row"])
    return frame if table == "1" else frame.round(4)


def null_comparison_frame(rows: Sequence[dict]):
    """:func:`null_comparison` rows as a DataFrame: one line per table, method and class; real − null with its
    95% interval over the support models' trainings, the p-value after Benjamini-Hochberg, and the verdict."""
    columns = ["real", "null", "real - null [95% CI over trainings]", "p (BH)", "verdict"]
    if not rows:  # no null control was run (null=None): an empty table, not a KeyError
        return pd.DataFrame(columns=columns, index=pd.MultiIndex.from_tuples([], names=["table", "method", "class"]))
    frame = pd.DataFrame(rows)
    def why_undefined(trainings) -> str:
        counts = list(trainings) if isinstance(trainings, (list, tuple)) else []
        if counts and min(counts) < 2:
            return "one training per arm"
        return "no spread between trainings" if counts else "undefined"

    frame["real - null [95% CI over trainings]"] = [
        f"{d:+.3f}{NBSP}[{lo:+.3f},{NBSP}{hi:+.3f}]" if np.isfinite(lo) else f"{d:+.3f} ({why_undefined(t)})"
        for d, lo, hi, t in zip(frame["difference"], frame["ci_low"], frame["ci_high"],
                                frame.get("trainings", [None] * len(frame)))]
    frame["p (BH)"] = [f"{p:.3g}" if np.isfinite(p) else "-" for p in frame.get("p_adjusted", [np.nan] * len(frame))]
    return frame.set_index(["table", "method", "class"])[columns].round(3)


def train_arms(bundle, images: np.ndarray, labels: np.ndarray, null: str | None = "shuffled_labels",
               trainings: int = 2, seed: int = 0, **kwargs) -> dict[str, list[SupportModels]]:
    """The support models of both arms, each trained ``trainings`` times with seeds ``seed``, ``seed + 1``, ...:
    "real" (GAD's) and, unless ``null`` is None, "null" (the control, e.g. shuffled labels). A retrain moves
    every table; only several trainings per arm let :func:`null_comparison` put that inside its interval.
    ``kwargs`` go to :func:`gradlime_utils.methods.gad.train_support_models`."""
    trainings = check_int("trainings", trainings, 1)
    arms = {"real": None, **({"null": null} if null else {})}
    return {arm: [train_support_models(bundle, images, labels, null=kind, seed=derive_seed(seed, k), **kwargs)
                  for k in range(trainings)] for arm, kind in arms.items()}


def describe_null_comparison(by_rule: Mapping[str, Sequence[dict]]) -> str:
    """The chapter's reading, in words, from the numbers: per hull rule and table, which methods differ from the
    null in GAD's favour (both classes), which the other way, and which do not."""
    names = {"top_fraction": "the tables' rule (top half of the non-zero pixels)",
             "fraction_of_max": "Figure 4's rule (pixels above 10% of the maximum)"}
    lines = []
    for rule, rows in by_rule.items():
        for table in ("Table 1", "Table 2"):
            chosen = [r for r in rows if r["table"] == table]
            methods = list(dict.fromkeys(r["method"] for r in chosen))
            verdicts = {m: {r["verdict"] for r in chosen if r["method"] == m} for m in methods}
            both = [m for m in methods if verdicts[m] == {"GAD beyond null"}]
            against = [m for m in methods if "null beyond GAD" in verdicts[m]]
            rest = [m for m in methods if m not in both and m not in against]
            stat = chosen[0]["statistic"] if chosen else ""
            lines.append(f"- **{table}, {names.get(rule, rule)}** ({stat}): GAD beyond its null for both classes: "
                         f"{', '.join(both) or 'none'}; the null beyond GAD for at least one class: "
                         f"{', '.join(against) or 'none'}; no difference or mixed: {', '.join(rest) or 'none'}.")
    return "\n".join(lines)


def results_json(records: Sequence[GadRecord], hull_rules: Mapping[str, float], occlusions: Sequence[str],
                 methods: Sequence[str] = ATTRIBUTION_METHODS, n_boot: int = 2000, seed: int = 0) -> dict:
    """Everything Tables 1-2 report, real and null, for every hull rule and occlusion: the JSON the ledger reads.

    ``table1`` / ``table2`` at the top level are the paper's setting (real models, tables' rule, black occlusion).
    """
    models = [m for m in MODELS if any(r.model == m for r in records)]
    out = {"methods": [SHORT_NAMES[m] for m in methods], "hull_rules": dict(hull_rules),
           "occlusions": list(occlusions), "models": models, "tables": {}, "null_comparison": [], "rs_paired": [],
           "on_object": [], "undefined_rs": {}}
    for rule in hull_rules:
        out["tables"][rule] = {model: {"table1": table1(records, methods, model, rule),
                                       "table2": {occ: table2(records, methods, model, rule, occ)
                                                  for occ in occlusions}} for model in models}
        for model in models:
            out["on_object"] += on_object_shares(records, methods, model, rule)
            for occ in occlusions:
                out["rs_paired"] += rs_paired(records, methods, model, rule, occ)
                out["undefined_rs"][f"{model}/{rule}/{occ}"] = undefined_rs_counts(records, methods, model, rule, occ)
        if "null" in models:
            for occ in occlusions:
                rows = null_comparison(records, methods, rule, occ, n_boot, seed)
                out["null_comparison"] += [r for r in rows if r["table"] == "Table 2" or occ == occlusions[0]]
    first = next(iter(hull_rules))
    out["table1"] = out["tables"][first]["real"]["table1"]
    out["table2"] = out["tables"][first]["real"]["table2"][occlusions[0]]
    return out


def plot_hulls(ax, image: np.ndarray, original: np.ndarray, gad: np.ndarray,
               hull_rules: Mapping[str, float] | None = None) -> None:
    """Figure 6's panel: the image with the original (red) and GAD (green) hulls, one line style per hull rule
    (solid: the tables' rule, dashed: Figure 4's rule)."""
    hull_rules = dict(HULL_RULE_SETTINGS if hull_rules is None else hull_rules)
    ax.imshow(image)
    for (rule, keep), style in zip(hull_rules.items(), ("solid", "dashed", "dotted")):
        for attribution, colour in ((original, "red"), (gad, "lime")):
            hull = convex_hull_mask(attribution, keep, rule)
            if hull.defined:
                ax.contour(hull.mask, levels=[0.5], colors=colour, linewidths=1, linestyles=style)
    ax.set_xticks([])
    ax.set_yticks([])


def rs_paired_frame(rows: Sequence[dict]):
    """:func:`rs_paired` rows as one DataFrame: per rule, method and class, a column per model × occlusion holding
    "share GAD > Sup (p, undefined pairs)"."""
    frame = pd.DataFrame(rows)
    frame["GAD > Sup (p; undefined)"] = [
        f"{s:.2f} (p={p:.1g}; {u})" if s == s else f"n/a ({u})"
        for s, p, u in zip(frame["share_gad_greater"], frame["wilcoxon_p"], frame["undefined"])]
    return frame.pivot_table(index=["rule", "method", "class"], columns=["model", "occlusion"],
                             values="GAD > Sup (p; undefined)", aggfunc="first")


def describe_mechanism(results: Mapping) -> str:
    """What the hulls are built on, in words, from :func:`results_json`'s on-object shares and areas."""
    rows = [r for r in results["on_object"] if r["model"] == "real"]
    if not rows or not np.isfinite(rows[0]["area_object"]) or rows[0]["area_object"] == 0:
        return "No object masks were given, so the share of hull points on the object is not measured."
    lines = []
    for rule in results["hull_rules"]:
        chosen = [r for r in rows if r["rule"] == rule]
        parts = ", ".join(f"{r['method']} {r['on_object_orig']:.0%} ({r['area_orig']:.0f} px)" for r in chosen)
        lines.append(f"- **{rule}**: share of the original hull's points on the object (mean hull area): {parts}; "
                     f"the object's own hull is {chosen[0]['area_object']:.0f} px on average.")
    return "\n".join(lines)


def write_results(folder, records: Sequence[GadRecord], results: Mapping) -> None:
    """The chapter's files: every record (``gad_records.csv``), Tables 1 and 2 of the tables' rule with real,
    null and paper rows (``gad_table1.csv``, ``gad_table2.csv``) and everything in ``gad_tables.json``."""
    folder = Path(folder)
    rows = records_to_rows(records)
    with open(folder / "gad_records.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    rule = next(iter(results["hull_rules"]))
    occlusion = results["occlusions"][0]
    for name in ("1", "2"):
        tables_frame(records, name, rule, occlusion).to_csv(folder / f"gad_table{name}.csv")
    (folder / "gad_tables.json").write_text(json.dumps(results, indent=1, default=float))


@dataclass
class GadSetting:
    """What chapter 03 explains: the original classifier f0, its training and evaluation splits, and which of the
    paper's blocks (dataset, architecture) its tables are set beside."""

    bundle: object
    train: object
    test: object
    dataset_name: str
    paper_block: tuple[str, str]


def gad_setting(profile: str, dataset: str = "oxford_pets", arch: str = "resnet18", data_root=None,
                per_class: int = 256, classifier_epochs: int = 3, seed: int = 0, device: str = "auto") -> GadSetting:
    """The paper profile: ``dataset`` (Oxford-IIIT Pet standing in for Kaggle's Dogs vs Cats, or CUB warblers vs
    sparrows) at 224 pixels and an ImageNet ``arch`` fine-tuned into f0 with a two-way head (GAD paper, Sec. 4).
    Otherwise the MNIST 3-vs-8 stand-in with the book's small CNN; 52% of its 1,000 digits are held out so that
    ``per_class`` = 256 can be evaluated, as the paper's 512 images."""
    if profile == "paper":
        train = load_binary_dataset(dataset, "train", root=data_root, size=224, mode="squash")
        test_all = load_binary_dataset(dataset, "test", root=data_root, size=224, mode="squash")
        bundle = train_binary_classifier(arch, train, test_all, device=device, seed=seed, epochs=classifier_epochs)
        block = ("Birds" if "cub" in dataset else "Cat×Dog", "VGG" if arch == "vgg16" else "ResNet")
        return GadSetting(bundle, train, test_all.balanced_subset(per_class, seed=seed), dataset, block)
    split = {"test_fraction": 0.52, "seed": seed}
    bundle = load_model("mnist_cnn", device=device, digits=(3, 8), progress=False, **split)
    train = load_binary_dataset("mnist_3_vs_8", "train", **split)
    test = load_binary_dataset("mnist_3_vs_8", "test", max_per_class=per_class, **split)
    return GadSetting(bundle, train, test, "mnist_3_vs_8", ("Cat×Dog", "ResNet"))


def plot_support_maps(image: np.ndarray, maps: Mapping[int, object], class_names: Sequence[str], alphas,
                      note: str = "", folder=None):
    """Figures 2 and 3 of the GAD paper from one image's Integrated Gradients ``maps`` (class -> GadMaps): the
    original model's map for each class, then every support model's map and the GAD map. ``note`` says what is
    reproduced (e.g. the stand-in); with ``folder`` both are saved (PNG and PDF). Returns both figures."""
    fig2, axes = plt.subplots(1, 3, figsize=(7, 2.6))
    axes[0].imshow(image); axes[0].set_title("input", fontsize=9)
    for t in (0, 1):
        axes[t + 1].imshow(maps[t].original[0], cmap=CMAPS["map"])
        axes[t + 1].set_title(f"IG, class {class_names[t]}", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    fig3, axes = plt.subplots(2, len(alphas) + 1, figsize=(2.1 * (len(alphas) + 1), 5.2))
    for t in (0, 1):
        for k, a in enumerate(alphas):
            axes[t, k].imshow(maps[t].per_model[k, 0], cmap=CMAPS["map"])
            axes[t, k].set_title(("f0" if a == 0 else f"f{a:g}") + f", {class_names[t]}", fontsize=8)
        axes[t, -1].imshow(maps[t].gad[0], cmap=CMAPS["map"]); axes[t, -1].set_title("GAD (min)", fontsize=8)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig2.suptitle(f"Figure 2 ({note}): IG of the original model for each class", fontsize=10)
    fig3.suptitle(f"Figure 3 ({note}): IG of the original and each support model, and the GAD map", fontsize=10)
    for fig, name in ((fig2, "D-2_original_maps.png"), (fig3, "D-3_support_maps.png")):
        fig.tight_layout()
        if folder is not None:
            save_figure(fig, Path(folder) / name)
    return fig2, fig3


def plot_distancing(support: SupportModels, inputs, labels: np.ndarray, class_names: Sequence[str],
                    title: str = "", path=None):
    """Figure 1 of the GAD paper from real data: every model's two logits on the (preprocessed) training
    ``inputs``, the original f0 first and then each support model, coloured by the true class, with the
    diagonal where the two logits tie. Saved as PNG and PDF to ``path``."""
    labels = np.asarray(labels)
    alphas = support.alphas
    fig, axes = plt.subplots(1, len(alphas), figsize=(3.1 * len(alphas), 3.2), sharex=True, sharey=True,
                             squeeze=False)
    axes = axes[0]
    for ax, a in zip(axes, alphas):
        z = support.logits(a, inputs)
        for k, colour in ((0, "tab:blue"), (1, "tab:orange")):
            ax.scatter(z[labels == k, 0], z[labels == k, 1], s=3, c=colour, label=class_names[k])
        ax.axline((0, 0), slope=1, color="k", lw=0.5)
        ax.set_title("original f0" if a == 0 else f"support α = {a:g}", fontsize=9)
        ax.set_xlabel(f"logit '{class_names[0]}'")
    axes[0].set_ylabel(f"logit '{class_names[1]}'")
    axes[0].legend(fontsize=7, markerscale=3)
    return finish_figure(fig, title, path)


def plot_hull(image: np.ndarray, attribution: np.ndarray, hull, name: str = "GAD-GB", title: str = "",
              path=None):
    """Figure 4 of the GAD paper: an attribution map, and beside it the image with the map's convex hull
    (``hull``, from :func:`convex_hull_mask`) and the points it encloses."""
    fig, axes = plt.subplots(1, 2, figsize=(5.4, 2.8))
    axes[0].imshow(attribution, cmap=CMAPS["map"]); axes[0].set_title(f"{name} map", fontsize=9)
    axes[1].imshow(image); axes[1].contour(hull.mask, levels=[0.5], colors="lime")
    axes[1].scatter(*np.argwhere(hull.points)[:, ::-1].T, s=2, c="red")
    axes[1].set_title(f"hull of {hull.points.sum()} points: {hull.area} px", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    return finish_figure(fig, title, path)


def plot_methods(maps: Mapping[str, object], predicted: Sequence[int], class_names: Sequence[str],
                 title: str = "", path=None):
    """Figure 5 of the GAD paper: per method (``maps``: method id -> :class:`GadMaps` of the shown images) the
    original model's map above the GAD map, one column per image, labelled with its predicted class."""
    methods, n = list(maps), len(predicted)
    fig, axes = plt.subplots(2 * len(methods), n, figsize=(1.6 * n, 1.6 * 2 * len(methods)), squeeze=False)
    for r, m in enumerate(methods):
        for c in range(n):
            axes[2 * r, c].imshow(maps[m].original[c], cmap=CMAPS["map"])
            axes[2 * r + 1, c].imshow(maps[m].gad[c], cmap=CMAPS["map"])
        axes[2 * r, 0].set_ylabel(f"{SHORT_NAMES[m]} orig", fontsize=8)
        axes[2 * r + 1, 0].set_ylabel(f"{SHORT_NAMES[m]} GAD", fontsize=8)
    for c, p in enumerate(predicted):
        axes[-1, c].set_xlabel(f"pred: {class_names[p]}", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([]); ax.set_yticks([])
    return finish_figure(fig, title, path)


def plot_hull_grid(images: np.ndarray, maps: Mapping[str, object], labels: Sequence[int],
                   class_names: Sequence[str], hull_rules: Mapping[str, float] | None = None,
                   title: str = "", path=None, columns: Sequence[int] | None = None):
    """Figure 6 of the GAD paper: per method (rows) and image (columns) the original (red) and GAD (green)
    hulls of :func:`plot_hulls`; ``maps``: method id -> :class:`GadMaps` of ``images``. ``columns`` draws only
    those images (a page-width figure; the file at ``path`` is written from the same call, so save the full grid
    with a call without ``columns``)."""
    methods = list(maps)
    columns = list(range(len(images))) if columns is None else [int(c) for c in columns]
    if not columns or not all(0 <= c < len(images) for c in columns):
        raise ValueError(f"columns must index the {len(images)} images, got {columns}")
    n = len(columns)
    fig, axes = plt.subplots(len(methods), n, figsize=(1.5 * n + 0.6, 1.6 * len(methods)), squeeze=False)
    for r, m in enumerate(methods):
        for k, c in enumerate(columns):
            plot_hulls(axes[r, k], images[c], maps[m].original[c], maps[m].gad[c], hull_rules)
        axes[r, 0].set_ylabel(SHORT_NAMES[m], fontsize=9)
    for k, c in enumerate(columns):
        axes[0, k].set_title(class_names[labels[c]], fontsize=8)
    return finish_figure(fig, title, path, fontsize=9)


def schedule_explorer(support: SupportModels, image: np.ndarray, target: int, method: str = "guided_backprop",
                      baseline: str = "black"):
    """The slider's drawing function for one image: ``draw(schedule, keep_fraction, combine)`` combines the cached
    per-model maps of a prefix of the alpha schedule (no new gradients) and shows the GAD map with the original's
    (red) and GAD's (green) hulls and their RC. Returns (draw, schedules)."""
    cached = gad_map(support, image, target, method, baseline=baseline)
    schedules = {"f0 only": [0.0]}
    for k in range(1, len(support.alphas)):
        schedules[f"f0..f{support.alphas[k]:g}"] = support.alphas[: k + 1]

    def draw(schedule, keep_fraction, combine="min"):
        rows = [support.alphas.index(a) for a in schedules[schedule]]
        gad = combine_maps(cached.per_model[rows], combine, keep_fraction)[0]
        original, hull = convex_hull_mask(cached.original[0], keep_fraction), convex_hull_mask(gad, keep_fraction)
        fig, ax = plt.subplots(1, 2, figsize=(5.6, 2.9))
        ax[0].imshow(gad, cmap=CMAPS["map"]); ax[0].set_title(f"GAD map ({combine})", fontsize=9)
        ax[1].imshow(image)
        for h, colour in ((original, "red"), (hull, "lime")):
            if h.defined:
                ax[1].contour(h.mask, levels=[0.5], colors=colour)
        ax[1].set_title(f"RC = {relative_complexity(hull, original):.2f}", fontsize=9)
        for a in ax:
            a.set_axis_off()
        fig.tight_layout()
        return fig

    return draw, schedules
