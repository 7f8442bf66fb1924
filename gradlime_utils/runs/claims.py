"""What held: one verdict per claim of each paper, from the results a run wrote (the ledger's store by default).

Each :class:`Claim` quotes a paper with its place, names the chapter whose results test it, the quantity measured
(an effect *minus its null*: random maps, random rankings, a shuffled-label model, an equal budget of random
search, or the claim's own bound), and the smallest effect that would matter (``sesoi``). :func:`finding` turns a
chapter's results into a :class:`Finding`: the effect, its interval, the null's range and a verdict from a fixed
vocabulary (:data:`VERDICTS`), by one rule (:func:`verdict_words`):

- *supported on the stand-in*: the chapter's own calibrated test marks it (a rank p-value against random maps or
  rankings under Benjamini-Hochberg over the chapter's table), or, for a claim the chapter measures as one
  interval, the interval lies above 0;
- *not supported on the stand-in*: the interval lies below 0, or inside ±``sesoi`` (an effect, if any, too small
  to matter);
- *undecided: the interval covers both*: neither;
- *not testable here: needs the paper's data*: the claim is about data, people or models this book cannot reach.

Intervals are per claim at 1 - 0.05 / k for the k measured claims of a paper (Bonferroni within a paper), so a
paper's verdicts together hold their 5% error rate; claims decided by a chapter's table keep that table's control.

The What-held page (``book/what_held.ipynb``) draws the forest plots and the table from these; each chapter
opens with :func:`opening` and closes with :func:`closing`, the same words.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats as st

from gradlime_utils.metrics.nulls import adjust_pvalues, welch_difference
from gradlime_utils.metrics.stats import mean_ci
from gradlime_utils.validation import check_choice

SUPPORTED = "supported on the stand-in"
NOT_SUPPORTED = "not supported on the stand-in"
UNDECIDED = "undecided: the interval covers both"
NOT_TESTABLE = "not testable here: needs the paper's data"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, UNDECIDED, NOT_TESTABLE)
COLOURS = {SUPPORTED: "#1b7837", NOT_SUPPORTED: "#b2182b", UNDECIDED: "#7f7f7f", NOT_TESTABLE: "#c9c9c9"}
ALPHA = 0.05
STORE = Path(__file__).resolve().parents[2] / "book" / "ledger"  # the ledger's store, in a checkout


@dataclass(frozen=True)
class Claim:
    """A paper's claim as the book tests it."""

    key: str
    paper: str            # GradLIME, GAD, EvoLIME, NormLIME, LIME heatmap
    quote: str            # the paper's words (or a close paraphrase, marked by the place)
    place: str            # where in the paper
    chapter: str          # the chapter whose results test it
    quantity: str         # what is measured, minus what
    family: str           # the forest plot's axis: claims of one family share it
    sesoi: float          # the smallest effect that would matter (nan: a bound claim, or untestable)
    stand_in: str = ""    # what the run stands in with
    measure: Callable[[dict, float], "Measured | None"] | None = None  # results -> measurement (None: the run
    # holds no evidence for it, e.g. GAD run without its null control); no measure: not testable here
    needs: str = ""       # for an untestable claim: what it needs


@dataclass
class Measured:
    effect: float
    low: float
    high: float
    evidence: str                      # images, seeds, random maps
    null_low: float = float("nan")     # the null's range around 0 (random maps' band minus its centre)
    null_high: float = float("nan")
    decided: bool | None = None        # the chapter's calibrated test: marked (True), not marked (False), none


@dataclass
class Finding:
    claim: Claim
    measured: Measured | None
    verdict: str

    def as_dict(self) -> dict:
        m = self.measured
        return {"key": self.claim.key, "paper": self.claim.paper, "verdict": self.verdict,
                **({} if m is None else {"effect": m.effect, "low": m.low, "high": m.high, "evidence": m.evidence})}


def verdict_words(low: float, high: float, sesoi: float, decided: bool | None = None) -> str:
    """The verdict of an interval [low, high] of effect minus null (positive: the claim's direction)."""
    if decided:
        return SUPPORTED
    if not (np.isfinite(low) and np.isfinite(high)):
        return UNDECIDED
    if low > high:
        raise ValueError(f"low must not exceed high, got {low!r} > {high!r}")
    if high < 0 or (np.isfinite(sesoi) and -sesoi < low and high < sesoi):
        return NOT_SUPPORTED
    if low > 0 and decided is None:
        return SUPPORTED
    return UNDECIDED


def _level(paper: str) -> float:
    k = sum(1 for c in CLAIMS if c.paper == paper and c.measure is not None)
    return 1 - ALPHA / max(k, 1)


def _half(half95: float, n: int, level: float) -> float:
    """A Student-t 95% half-width over ``n`` units, widened to ``level``."""
    if n < 2 or not np.isfinite(half95):
        return float("nan")
    return half95 * st.t.ppf(0.5 + level / 2, n - 1) / st.t.ppf(0.975, n - 1)


def _interval(values, level: float) -> tuple[float, float, float, int]:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    mean, half = mean_ci(values, level) if len(values) else (float("nan"), float("nan"))
    return mean, mean - half, mean + half, len(values)


# --- the measurements: each reads the chapter's result file(s) the ledger keeps -----------------------------------

def _faithfulness(d: dict, level: float) -> Measured:
    row = next(r for r in d["evaluation_tables.json"]["G-5"] if r["method"] == "GradLIME (feature)")
    metric = "FaithfulnessCorrelation"
    band = d["evaluation_tables.json"]["photo_chance"]["bands"][row.get("kind", "superpixel")][metric]
    n = len(d["evaluation_tables.json"]["images"]) - int(row.get(f"{metric} undefined", 0))
    half = _half(row[f"{metric} ci95"], n, level)
    effect = row[metric] - band["mean"]
    marked = sum(1 for r in d["evaluation_tables.json"]["G-5"] if r["method"] == "GradLIME (feature)"
                 for k in r if k.endswith(" vs chance") and r[k] == "above")
    return Measured(effect, effect - half, effect + half,
                    f"{n} photos, {band['draws']} random superpixel maps; {marked} of 5 faithfulness metrics beyond "
                    f"chance after Benjamini-Hochberg over the table",
                    band["low"] - band["mean"], band["high"] - band["mean"],
                    decided=row.get(f"{metric} vs chance") == "above")


def _localisation(d: dict, level: float) -> Measured:
    row = next(r for r in d["evaluation_tables.json"]["localisation"] if r["method"] == "GradLIME (feature)")
    metric = "PointingGame"
    low_b, high_b = row[f"{metric} band"]
    centre = (low_b + high_b) / 2
    mean, low, high, n = _interval(row[f"{metric} seeds"], level)
    return Measured(mean - centre, low - centre, high - centre,
                    f"{n} training seeds of the shapes CNN, {d['evaluation_tables.json']['benchmark']['n']} test "
                    f"images, random maps per seed", low_b - centre, high_b - centre,
                    decided=row.get(f"{metric} vs chance") == "above")


def _gad(table: str, occlusion: str) -> Callable[[dict, float], Measured]:
    def measure(d: dict, level: float) -> Measured:
        rows = [r for r in d["gad_tables.json"].get("null_comparison", []) if r["table"] == table
                and r["rule"] == "top_fraction" and r["occlusion"] == occlusion]
        if not rows:  # run without the null control (null=None): nothing to set the claim against
            return None
        real = np.nanmean([r["real_by_training"] for r in rows], axis=0)
        null = np.nanmean([r["null_by_training"] for r in rows], axis=0)
        diff = welch_difference(real, null, level=level)
        return Measured(diff.difference, diff.low, diff.high,
                        f"{len(real)} + {len(null)} trainings (real, shuffled-label null), mean over {len(rows)} "
                        f"method x class rows, MNIST 3-vs-8 stand-in")
    return measure


def _evolime_gain(d: dict, level: float) -> Measured:
    rows = d["evolime_runs.json"]
    mean, low, high, n = _interval([r["gain_over_random"] for r in rows], level)
    beyond = int(np.sum(adjust_pvalues(np.array([r["gain_p"] for r in rows], dtype=float)) <= ALPHA))
    return Measured(mean, low, high, f"{n} photos x {rows[0]['runs']} GA runs against {rows[0]['draws']} random "
                                     f"searches of the same budget; the GA beats them on {beyond} of {n} photos "
                                     f"alone (Welch, Benjamini-Hochberg), the interval asks it of new photos")


def _evolime_speed(d: dict, level: float) -> Measured:
    rows = d["evolime_runs.json"]
    ratios = [math.log10(r["lime_seconds"] / r["ga_seconds"] / 10) for r in rows]
    mean, low, high, n = _interval(ratios, level)
    return Measured(mean, low, high, f"{n} photos; LIME {rows[0]['lime_queries']} queries against the GA's "
                                     f"{rows[0]['budget']}, wall time on this machine's CPU")


def _evolime_minute(d: dict, level: float) -> Measured:
    rows = d["evolime_runs.json"]
    mean, low, high, n = _interval([math.log10(60 / r["ga_seconds"]) for r in rows], level)
    return Measured(mean, low, high, f"{n} photos, mean GA run time on this machine's CPU")


def _kar_random(d: dict, level: float) -> Measured:
    kar = d["normlime_kar.json"]
    j = int(np.argmin(kar["fractions"]))
    comp = kar["comparison"][j]
    centre = comp["random mean"]
    mean, low, high, n = _interval(kar["accuracy"]["NormLIME"][j], level)
    return Measured(mean - centre, low - centre, high - centre,
                    f"{n} KAR training seeds, {comp['random n']} random rankings, {comp['fraction']:.0%} of cells kept",
                    comp["random low"] - centre, comp["random high"] - centre,
                    decided=comp.get("NormLIME vs random") == "above")


def _kar_lime(d: dict, level: float) -> Measured:
    kar = d["normlime_kar.json"]
    j = int(np.argmin(kar["fractions"]))
    ref = next(x for x in kar["comparison"][j]["differences"] if x["reference"] == "LIME-average")
    n = len(kar["seeds"])
    half = _half(ref["ci95"], n, level) if ref["ci95"] > 0 else 0.0
    return Measured(ref["difference"], ref["difference"] - half, ref["difference"] + half,
                    f"{n} KAR training seeds, paired; {kar['comparison'][j]['fraction']:.0%} of cells kept")


def _heat(key: Callable[[dict], float], what: str) -> Callable[[dict, float], Measured]:
    def measure(d: dict, level: float) -> Measured:
        rows = d["heatmap_results.json"]
        mean, low, high, n = _interval([key(r) for r in rows], level)
        return Measured(mean, low, high, f"{n} photos; {what}")
    return measure


CLAIMS = (
    Claim("G1", "GradLIME", "GradLIME is more effective at distinguishing between important and unimportant features",
          "abstract", "04_evaluation", "FaithfulnessCorrelation of GradLIME's map minus random maps'",
          "faithfulness (correlation)", 0.10, "EfficientNet-Lite0 on four photos", _faithfulness),
    Claim("G2", "GradLIME", "GradLIME extracts accurate local explanations",
          "abstract", "04_evaluation", "Pointing Game on objects of known place minus random maps'",
          "localisation (hit rate)", 0.10, "a shapes benchmark with known object masks", _localisation),
    Claim("G3", "GradLIME", "the quantitative comparison on ImageNet validation images (its faithfulness table)",
          "repository, MyFaithfulness.py", "04_evaluation", "", "", float("nan"),
          needs="ResNet18 and 50 ImageNet validation images: the paper profile"),
    Claim("D1", "GAD", "class distancing simplifies gradient-based visualisations (smaller regions, RC < 1)",
          "Sec. 6, Table 1", "03_gad", "share of images with RC < 1, real support models minus shuffled-label null",
          "share of images", 0.10, "MNIST 3 vs 8 with a small CNN", _gad("Table 1", "-")),
    Claim("D2", "GAD", "the regions GAD keeps are the ones the network is sensitive to (higher RS)",
          "Sec. 6, Table 2", "03_gad", "RS(GAD) - RS(support maps), x100, real minus shuffled-label null",
          "RS difference (x100)", 1.0, "MNIST 3 vs 8 with a small CNN", _gad("Table 2", "black")),
    Claim("D3", "GAD", "Tables 1-2 on cats vs dogs and warblers vs sparrows with VGG and ResNet",
          "Sec. 6", "03_gad", "", "", float("nan"), needs="Oxford-IIIT Pet and CUB-200 with ImageNet weights: the "
          "paper profile"),
    Claim("E1", "EvoLIME", "optimising the fitness selects the most informative superpixels",
          "abstract (v3)", "05_evolime", "probability of the class on the kept superpixels, GA minus random search",
          "probability", 0.02, "EfficientNet-Lite0 on four photos", _evolime_gain),
    Claim("E2", "EvoLIME", "more than ten times faster than LIME", "abstract (v1)", "05_evolime",
          "log10 of (LIME's time / the GA's time) / 10: 0 is ten times faster", "speed (log10 of measured / claimed)",
          float("nan"), "EfficientNet-Lite0 on a CPU", _evolime_speed),
    Claim("E3", "EvoLIME", "explanations within one minute", "abstract (v1)", "05_evolime",
          "log10 of 60 s / the GA's time: above 0 is within a minute", "speed (log10 of measured / claimed)",
          float("nan"), "EfficientNet-Lite0 on a CPU", _evolime_minute),
    Claim("E4", "EvoLIME", "model-agnostic: evolved explanations for ResNet, DenseNet and MobileNet on ImageNet",
          "abstract (v3), experiments", "05_evolime", "", "", float("nan"),
          needs="the three ImageNet networks' weights: the paper profile"),
    Claim("N1", "NormLIME", "NormLIME is effective at recognizing important features", "abstract", "06_normlime",
          "KAR accuracy keeping NormLIME's top cells minus random rankings'", "accuracy", 0.02,
          "MNIST digits with a small CNN", _kar_random),
    Claim("N2", "NormLIME", "NormLIME's normalisation improves on averaging LIME's weights",
          "Sec. 3 (the aggregation)", "06_normlime", "KAR accuracy, NormLIME minus LIME-average", "accuracy", 0.02,
          "MNIST digits with a small CNN", _kar_lime),
    Claim("N3", "NormLIME", "a human user study strongly favored class-specific interpretations created by NormLIME",
          "abstract", "06_normlime", "", "", float("nan"), needs="a user study with people"),
    Claim("H1", "LIME heatmap", "the heatmap determines the image segments playing the greatest influence on class "
          "scoring", "abstract", "07_lime_heatmap_vs_gradcam",
          "insertion area of the LIME heat map minus random superpixel maps'", "insertion area", 0.10,
          "EfficientNet-Lite0 on four photos",
          _heat(lambda r: r["insertion LIME linear"] - r["insertion null superpixel"][0], "39 random maps each")),
    Claim("H2", "LIME heatmap", "manipulation of the identified feature could mislead the classifier", "abstract",
          "07_lime_heatmap_vs_gradcam", "probability drop occluding the top segment minus the median segment",
          "probability", 0.05, "EfficientNet-Lite0 on four photos",
          _heat(lambda r: r["drop_top"] - r["drop_median"], "every segment occluded once")),
    Claim("H3", "LIME heatmap", "compared with Grad-CAM, the experiments demonstrate the superiority of the method",
          "abstract", "07_lime_heatmap_vs_gradcam", "insertion area, LIME heat map minus Grad-CAM", "insertion area",
          0.10, "EfficientNet-Lite0 on four photos",
          _heat(lambda r: r["insertion LIME linear"] - r["insertion Grad-CAM"], "paired per photo")),
    Claim("H4", "LIME heatmap", "the heatmap improves classification accuracy in a decision-support framework on "
          "fish images", "abstract", "07_lime_heatmap_vs_gradcam", "", "", float("nan"),
          needs="the paper's fish datasets and its decision-support framework"),
)
PAPERS = tuple(dict.fromkeys(c.paper for c in CLAIMS))

# the result files each chapter's claims read (a subset of the ledger's DATA_FILES)
RESULT_FILES = {"03_gad": ["gad_tables.json"], "04_evaluation": ["evaluation_tables.json"],
                "05_evolime": ["evolime_runs.json"], "06_normlime": ["normlime_kar.json"],
                "07_lime_heatmap_vs_gradcam": ["heatmap_results.json"]}


def read_results(folder: str | Path, chapter: str) -> dict | None:
    """The result files ``chapter``'s claims read, from its results folder (``.../results``), or None if absent."""
    folder = Path(folder)
    out = {}
    for name in RESULT_FILES.get(chapter, []):
        path = folder / name
        if not path.is_file():
            return None
        out[name] = json.loads(path.read_text())
    return out


def finding(claim: Claim, results: dict | None) -> Finding:
    """The verdict on ``claim`` from its chapter's results (None: the chapter has not run)."""
    if claim.measure is None:
        return Finding(claim, None, NOT_TESTABLE)
    if results is None:
        return Finding(claim, None, UNDECIDED)
    m = claim.measure(results, _level(claim.paper))
    if m is None:
        return Finding(claim, None, UNDECIDED)
    return Finding(claim, m, verdict_words(m.low, m.high, claim.sesoi, m.decided))


def findings_from_store(store: str | Path = STORE, profile: str = "quick") -> list[Finding]:
    """Every claim's finding from the ledger's store (``book/ledger/<chapter>/<profile>/results``)."""
    store = Path(store)
    if not store.is_dir():
        raise FileNotFoundError(f"store must be the ledger's store folder, got {store}")
    cache: dict[str, dict | None] = {}
    out = []
    for claim in CLAIMS:
        if claim.chapter not in cache:
            cache[claim.chapter] = read_results(store / claim.chapter / profile / "results", claim.chapter)
        out.append(finding(claim, cache[claim.chapter]))
    return out


def _number(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:+.3g}"


def sentence(f: Finding) -> str:
    """The claim and its verdict in one sentence: the words the What-held page and the chapter both show."""
    c = f.claim
    head = f"{c.paper} ({c.place}): \"{c.quote}\" - **{f.verdict}**"
    if f.measured is None:
        return head + (f" ({c.needs})." if c.needs else " (this run has no evidence for it: the chapter did not "
                                                         "run, or ran without the null it is set against).")
    m = f.measured
    level = _level(c.paper)
    return (f"{head}: {c.quantity} = {_number(m.effect)} [{_number(m.low)}, {_number(m.high)}] "
            f"({level:.1%} interval; {m.evidence}; stand-in: {c.stand_in}).")


def opening(paper: str) -> str:
    """A paper's claims as a chapter opens with them (Markdown): the quote, its place, and the chapter testing it."""
    paper = check_choice("paper", paper, PAPERS)
    claims = [c for c in CLAIMS if c.paper == paper]
    return "\n".join(f"- {c.key}: \"{c.quote}\" ({c.place}); " +
                     (f"tested in chapter {c.chapter[:2]} as {c.quantity}" if c.measure else
                      f"not testable here: needs {c.needs}") for c in claims)


def closing(chapter: str, results_folder: str | Path) -> str:
    """The chapter's verdicts from the results it has just written (Markdown): the What-held page's words."""
    results = read_results(results_folder, chapter)
    lines = [f"- {sentence(finding(c, results))}" for c in CLAIMS if c.chapter == chapter]
    if not lines:
        raise ValueError(f"chapter must be one with claims, one of {sorted(RESULT_FILES)}, got {chapter!r}")
    return "\n".join(lines)


def table(findings: list[Finding]) -> str:
    """The What-held table (Markdown): claim, place, verdict, measured, evidence."""
    out = ["| | paper | claim (place) | verdict | effect - null [interval] | evidence |", "|---|---|---|---|---|---|"]
    for f in findings:
        c, m = f.claim, f.measured
        measured = (f"{c.quantity}: {_number(m.effect)} [{_number(m.low)}, {_number(m.high)}]" if m
                    else (c.needs or "not run"))
        evidence = (f"{m.evidence}; stand-in: {c.stand_in}" if m else "")
        out.append(f"| {c.key} | {c.paper} | \"{c.quote}\" ({c.place}) | {f.verdict} | {measured} | {evidence} |")
    return "\n".join(out)


def counts(findings: list[Finding]) -> dict[str, int]:
    return {v: sum(1 for f in findings if f.verdict == v) for v in VERDICTS}


def _label(claim: Claim, width: int = 30) -> str:
    short = claim.quote if len(claim.quote) <= width else claim.quote[:width - 1].rsplit(" ", 1)[0] + " ..."
    return f"{claim.key} {short}"


def forest_plot(findings: list[Finding], paper: str):
    """One paper's forest plot: every measured claim's effect minus its null with its interval, one axis per
    family (claims of one family share units), the null's range in grey where it has one, ±sesoi dashed, each
    point coloured by its verdict. Returns the figure."""
    rows = [f for f in findings if f.claim.paper == paper and f.measured is not None]
    if not rows:
        raise ValueError(f"paper must have measured claims, got {paper!r}")
    families = list(dict.fromkeys(f.claim.family for f in rows))
    fig, axes = plt.subplots(len(families), 1, figsize=(8.0, 0.9 + 0.75 * len(rows) + 0.35 * len(families)),
                             squeeze=False, gridspec_kw={"height_ratios": [sum(f.claim.family == fam for f in rows)
                                                                            for fam in families]})
    for ax, fam in zip(axes[:, 0], families):
        mine = [f for f in rows if f.claim.family == fam]
        for y, f in enumerate(reversed(mine)):
            m = f.measured
            if np.isfinite(m.null_low):
                ax.fill_betweenx([y - 0.3, y + 0.3], m.null_low, m.null_high, color="#dddddd", lw=0)
            if np.isfinite(f.claim.sesoi):
                for x in (-f.claim.sesoi, f.claim.sesoi):
                    ax.plot([x, x], [y - 0.4, y + 0.4], ls="--", lw=0.8, color="#999999")
            colour = COLOURS[f.verdict]
            if np.isfinite(m.low):
                ax.plot([m.low, m.high], [y, y], color=colour, lw=2.2)
            ax.plot([m.effect], [y], "o", color=colour, ms=7)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(range(len(mine)), [_label(f.claim) for f in reversed(mine)], fontsize=8.5)
        ax.set_ylim(-0.6, len(mine) - 0.4)
        ax.set_xlabel(f"{fam}: effect minus null (positive: the claim's direction)", fontsize=9)
    handles = [plt.Line2D([], [], marker="o", color=COLOURS[v], lw=2, label=v) for v in VERDICTS[:3]]
    handles.append(plt.Rectangle((0, 0), 1, 1, color="#dddddd", label="null's range (random maps, rankings)"))
    handles.append(plt.Line2D([], [], ls="--", lw=0.8, color="#999999", label="± smallest effect that matters"))
    axes[0, 0].legend(handles=handles, fontsize=7.5, loc="lower center", bbox_to_anchor=(0.5, 1.02), ncol=3,
                      frameon=False)
    axes[0, 0].set_title(paper, fontsize=11, pad=34)
    fig.tight_layout()
    return fig
