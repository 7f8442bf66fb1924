"""How many images, trainings, GA runs and random draws the paper profile needs: sample sizes chosen by power.

For each claim the book tests, ``power_table`` takes the spread this book *measured* on its stand-in run (the
quick profile's results kept in the ledger store, ``book/ledger``), a stated smallest effect of interest (none of
the papers reports a variance or an effect size for its claims, so the effect to resolve is ours, written beside
each row), and the multiplicity control the chapter applies (Benjamini-Hochberg over a table of ``cells`` tests:
at its hardest, one true effect among them, it asks the smallest p-value to reach ``0.05 / cells``). From these,
the number of units that gives 80% power (``gradlime_utils.metrics.stats.n_for_power``), the number of random draws a
rank p-value needs to be able to reach that bar (``gradlime_utils.metrics.stats.draws_for_rank_test``), the size the
paper profile uses (:func:`paper_sizes`: the chapters' ``SIZES``, read, not copied), and
the GPU time the needed size would take, scaled from the chapter's estimate (``gradlime_utils.runs.paper.GPU_HOURS``).

``python -m gradlime_utils.runs.power --store book/ledger --update book/reproducing.md`` rewrites the table in
the reproducing page (between its ``power-table`` markers); ``reproduce --check`` prints it.

Spreads from a quick run are estimates from few units (four photos, two trainings per arm): the sizes are
planning numbers, not guarantees, and they are recomputed whenever the ledger is regenerated.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats as st

from gradlime_utils.experiments import CHAPTER_MODULES, chapter_sizes
from gradlime_utils.metrics.stats import draws_for_rank_test, n_for_power
from gradlime_utils.runs.paper import GPU_HOURS

ALPHA = 0.05
POWER = 0.8
DAY_HOURS = 24.0

# Two sizes the power table judges that are parameters, not SIZES: their defaults in the chapters' parameters cells
# (tests/runs/test_power.py reads the notebooks and fails when one differs).
PARAMETER_SIZES = {"04_evaluation": {"n_images": 50}, "07_lime_heatmap_vs_gradcam": {"max_images": 20}}


def paper_sizes() -> dict[str, dict]:
    """Chapter -> the paper profile's sizes: its ``SIZES`` paper values and :data:`PARAMETER_SIZES`."""
    return {chapter: {**chapter_sizes(chapter).values_of("paper"), **PARAMETER_SIZES.get(chapter, {})}
            for chapter in CHAPTER_MODULES}


# Cells of the paper profile's tables that share one Benjamini-Hochberg control (the chapters' designs).
PAPER_CELLS = {
    "04 faithfulness": 16 * 5,   # G-5: 16 methods x 5 faithfulness metrics with a chance band
    "03 real - null": 20,        # Table 1 (or 2), one hull rule: 5 methods x 2 classes x 2 statistics
    "05 GA - random": 3 * 4,     # 3 networks x 4 images
    "06 KAR": 6 * 3,             # 6 kept fractions x 3 rankings (NormLIME, LIME-average, ink)
    "07 insertion": 20 * 3 * 2,  # 20 photos x 3 maps x 2 kinds of random map, per network
    "07 LIME - Grad-CAM": 2,     # one paired comparison per network
    "04 stability": 2,           # GradLIME's two priors against LIME
}


@dataclass
class PowerRow:
    """One claim: what is resolved, from which measured spread, how many units that takes and how many are used."""

    chapter: str
    claim: str
    quantity: str
    effect: float          # the smallest effect of interest, in the quantity's units
    spread: float          # the measured standard deviation per unit (of the difference, where paired)
    spread_from: str       # what the spread was measured on
    unit: str              # what n counts
    cells: int             # tests under the chapter's BH control
    n_needed: int | None   # units (per arm) for 80% power at alpha / cells; None: more than a million
    n_used: int            # the paper profile's size
    gpu_hours: float       # the chapter's GPU estimate scaled to n_needed
    arms: int = 1
    why: str = ""          # why the paper profile does not follow n_needed, where it does not

    @property
    def enough(self) -> bool:
        return self.n_needed is not None and self.n_used >= self.n_needed

    @property
    def over_a_day(self) -> bool:
        return self.n_needed is None or self.gpu_hours > DAY_HOURS

    @property
    def reason(self) -> str:
        """Why the paper profile stays below n_needed ("" when it does not)."""
        if self.enough:
            return ""
        return self.why or ("the needed size takes more than a day of GPU time" if self.over_a_day else "")


def _sd_from_ci(half_width: float, n: int) -> float:
    """The per-unit standard deviation behind a Student-t 95% half-width over ``n`` units."""
    return float(half_width * math.sqrt(n) / st.t.ppf(0.975, n - 1))


def _load(store: Path, chapter: str, name: str):
    path = Path(store) / chapter / "quick" / "results" / name
    if not path.is_file():
        raise FileNotFoundError(f"store has no {chapter} quick result {name} (looked for {path}): regenerate the "
                                f"ledger from a quick run first")
    return json.loads(path.read_text())


def _row(chapter, claim, quantity, effect, spread, spread_from, unit, cells_key, used, arms=1, cost_units=None):
    cells = PAPER_CELLS[cells_key]
    if not spread > 0:  # every unit gave the same difference: no spread to plan from
        return PowerRow(chapter, claim, quantity, effect, spread, spread_from + "; no spread measured", unit, cells,
                        None, used, float("inf"), arms)
    n = n_for_power(effect, spread, alpha=ALPHA / cells, power=POWER, arms=arms)
    hours = GPU_HOURS[chapter] * (cost_units(n) if cost_units else (n or 10**6) / used)
    return PowerRow(chapter, claim, quantity, effect, spread, spread_from, unit, cells, n, used, hours, arms)


def _draws_row(chapter, claim, quantity, cells_key, used, per_draw_share):
    """A row for the number of random draws behind a rank p-value: needed = the BH bar for a lone effect."""
    cells = PAPER_CELLS[cells_key]
    n = draws_for_rank_test(cells, ALPHA)
    hours = GPU_HOURS[chapter] * ((1 - per_draw_share) + per_draw_share * (n + 1) / (used + 1))
    return PowerRow(chapter, claim, quantity, float("nan"), float("nan"),
                    f"none needed: the rank p-value's floor 1/(draws+1) must reach {ALPHA}/{cells}",
                    "random draws", cells, n, used, hours)


def power_table(store: str | Path) -> list[PowerRow]:
    """The power table from the quick run kept in ``store`` (the ledger's store, ``book/ledger``)."""
    store = Path(store)
    if not store.is_dir():
        raise FileNotFoundError(f"store must be the ledger's store folder, got {store} (not a folder)")
    rows: list[PowerRow] = []
    sizes = paper_sizes()

    # 03 GAD: real - null over trainings (Welch), Table 1's share of images with RC < 1.
    gad = _load(store, "03_gad", "gad_tables.json")
    variances = [np.var(r[k], ddof=1) for r in gad["null_comparison"] if r["table"] == "Table 1"
                 for k in ("real_by_training", "null_by_training") if len(r[k]) >= 2 and np.all(np.isfinite(r[k]))]
    if variances:
        sd = float(np.sqrt(np.mean(variances)))
        rows.append(_row("03_gad", "GAD's maps are simpler than a shuffled-label null's (GAD Sec. 6, Table 1)",
                         "share of images with RC < 1, real - null", 0.10, sd,
                         f"{len(variances)} arms x trainings of the MNIST 3-vs-8 stand-in (pooled)",
                         "trainings per arm", "03 real - null", sizes["03_gad"]["trainings"], arms=2))

    # 04: faithfulness beyond random maps (per image, method minus random map), and the draws it needs.
    ev = _load(store, "04_evaluation", "evaluation_tables.json")
    n_img = len(ev["images"])
    band = ev["photo_chance"]["bands"]["superpixel"]["FaithfulnessCorrelation"]
    sd_random = float(np.std(band["values"], ddof=1) * math.sqrt(n_img))
    grad = next(r for r in ev["G-5"] if r["method"] == "GradLIME (feature)")
    sd_method = _sd_from_ci(grad["FaithfulnessCorrelation ci95"], n_img - grad["FaithfulnessCorrelation undefined"])
    rows.append(_row("04_evaluation", "GradLIME's map is more faithful than a random map (GradLIME, abstract: "
                     "'more effective at distinguishing between important and unimportant features')", "FaithfulnessCorrelation, method - random map",
                     0.10, float(math.hypot(sd_method, sd_random)),
                     f"{n_img} photos, EfficientNet-Lite0 stand-in (GradLIME and {band['draws']} random maps)",
                     "images", "04 faithfulness", sizes["04_evaluation"]["n_images"]))
    rows[-1].why = ("one ImageNet class holds 50 validation images; more needs several classes (the repository's "
                    "--NumFile), which chapter 04 does not read yet")
    rows.append(_draws_row("04_evaluation", "the same table's verdicts (rank p-values, BH over the table)",
                           "random maps per chance band", "04 faithfulness", sizes["04_evaluation"]["n_random_maps"],
                           per_draw_share=0.9))
    by = {}
    for s in ev["stability"]:
        by.setdefault(s["method"], {}).setdefault(s["N"], {})[s["image"]] = s["agreement_spearman"]
    top = max(by["LIME"])
    lime, prior = by["LIME"][top], by["GradLIME (feature)"][top]
    diffs = [prior[i] - lime[i] for i in lime if i in prior]
    rows.append(_row("04_evaluation", "GradLIME's prior steadies LIME across seeds (new, not in the papers)",
                     f"Spearman agreement of weights across seeds (N = {top}), GradLIME - LIME", 0.05,
                     float(np.std(diffs, ddof=1)), f"{len(diffs)} photos, EfficientNet-Lite0 stand-in (paired)",
                     "images", "04 stability", sizes["04_evaluation"]["n_images"]))

    # 05 EvoLIME: GA - random search per image (Welch over runs), spread per run from the gain's interval.
    evo = _load(store, "05_evolime", "evolime_runs.json")
    # the gain's half-width is t * sd * sqrt(2 / runs) (equal arms): sd = half * sqrt(runs / 2) / t
    sds = [(r["gain_high"] - r["gain_low"]) / 2 * math.sqrt(r["runs"] / 2) / st.t.ppf(0.975, 2 * r["runs"] - 2)
           for r in evo if r.get("gain_high") is not None and r["runs"] >= 2]
    rows.append(_row("05_evolime", "evolved explanations beat an equal budget of random search (EvoLIME, "
                     "abstract: the GA selects the most informative superpixels)",
                     "probability of the class on the kept superpixels, GA - random search", 0.02,
                     float(np.sqrt(np.mean(np.square(sds)))),
                     f"{len(sds)} photos x {evo[0]['runs']} runs, EfficientNet-Lite0 stand-in (pooled)",
                     "GA runs and random searches per image", "05 GA - random", sizes["05_evolime"]["runs"], arms=2))

    # 06 NormLIME: KAR's rank p-value against random rankings.
    rows.append(_draws_row("06_normlime", "NormLIME's ranking keeps more accuracy than a random ranking (NormLIME, "
                           "KAR ablation)",
                           "random rankings (one retraining each)", "06 KAR", sizes["06_normlime"]["n_random"],
                           per_draw_share=0.9))

    # 07: LIME heat map vs Grad-CAM insertion (paired per photo), and the insertion p-values' random maps.
    heat = _load(store, "07_lime_heatmap_vs_gradcam", "heatmap_results.json")
    gaps = [r["insertion LIME linear"] - r["insertion Grad-CAM"] for r in heat]
    rows.append(_row("07_lime_heatmap_vs_gradcam", "LIME's heat map ranks pixels differently from Grad-CAM "
                     "(LIME heatmap, abstract: LIME compared with Grad-CAM)", "insertion AUC, LIME - Grad-CAM", 0.10,
                     float(np.std(gaps, ddof=1)), f"{len(gaps)} photos, EfficientNet-Lite0 stand-in (paired)",
                     "photos", "07 LIME - Grad-CAM", sizes["07_lime_heatmap_vs_gradcam"]["max_images"]))
    rows.append(_draws_row("07_lime_heatmap_vs_gradcam", "each map's insertion beyond random maps (BH over photos, "
                           "maps and kinds)", "random maps per kind and photo", "07 insertion",
                           sizes["07_lime_heatmap_vs_gradcam"]["n_random"], per_draw_share=0.8))
    return rows


def _n(value) -> str:
    return "more than 10^6" if value is None else f"{value:,}"


def _hours(h: float) -> str:
    if h > DAY_HOURS:
        return f"{h / 24:,.1f} days: more than a day"
    return f"{h * 60:.0f} min" if h < 1 else f"{h:.1f} h"


def format_power_table(rows: list[PowerRow]) -> str:
    """The table as Markdown, six columns that fit the book's text column: the chapter and claim (with what is
    measured), the effect to resolve against the measured spread, the BH cells, n needed, n used, GPU time."""
    out = ["| ch. | claim: what is measured | effect / spread (measured on) | n needed (80% power, BH cells) "
           "| n used (paper) | GPU time at n needed |", "|---|---|---|---|---|---|"]
    for r in rows:
        effect = "any" if math.isnan(r.effect) else f"{r.effect:g}"
        spread = r.spread_from if math.isnan(r.spread) else f"{r.spread:.3g} ({r.spread_from})"
        used = f"{r.n_used:,}" + ("" if r.enough else f" (too few: {r.reason})")
        out.append(f"| {r.chapter[:2]} | {r.claim}: {r.quantity} | {effect} / {spread} | {_n(r.n_needed)} {r.unit} "
                   f"({r.cells}) | {used} | {_hours(r.gpu_hours)} |")
    return "\n".join(out)


def summary_lines(rows: list[PowerRow]) -> list[str]:
    """One line per row for ``reproduce --check``: needed, used, and whether it fits in a day."""
    lines = []
    for r in rows:
        state = "enough" if r.enough else f"too few: {r.reason or 'raise it'}"
        lines.append(f"    {r.chapter:<27} {r.quantity[:48]:<48} needed {_n(r.n_needed):>13} used {r.n_used:>5,}"
                     f"  {state}")
    return lines


BEGIN, END = "<!-- power-table: begin (generated by python -m gradlime_utils.runs.power) -->", \
    "<!-- power-table: end -->"


def render_into(page: str, table: str) -> str:
    """``page`` with the text between the power-table markers replaced by ``table``."""
    if BEGIN not in page or END not in page:
        raise ValueError(f"the page has no power-table markers ({BEGIN!r} ... {END!r})")
    head, rest = page.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gradlime_utils.runs.power", description=__doc__.split("\n")[0])
    parser.add_argument("--store", default="book/ledger", help="the ledger's store (default: book/ledger)")
    parser.add_argument("--update", default=None, help="a page with power-table markers to rewrite in place")
    args = parser.parse_args(argv)
    store = Path(args.store).expanduser().resolve()
    table = format_power_table(power_table(store))
    if args.update:
        page = Path(args.update).expanduser().resolve()
        page.write_text(render_into(page.read_text(), table))
        print(f"power table written into {page}")
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
