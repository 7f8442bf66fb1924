"""Sizes chosen by power (issue 23): the power function against simulation, the draws a rank p-value needs, and
the power table against the ledger store, the chapters' paper sizes and the reproducing page."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st

import gradlime_utils as gu
from gradlime_utils.runs import power
from gradlime_utils.metrics.stats import draws_for_rank_test, n_for_power, t_test_power

ROOT = Path(__file__).resolve().parents[2]
STORE = ROOT / "book" / "ledger"


@pytest.mark.parametrize("arms, expected", [(1, 34), (2, 64)])
def test_n_for_power_matches_the_textbook_sizes_for_half_a_standard_deviation(arms, expected):
    # Cohen's tables: d = 0.5 at alpha 0.05, 80% power: 34 pairs, 64 per group.
    assert n_for_power(0.5, 1.0, arms=arms) == expected
    assert t_test_power(expected - 1, 0.5, 1.0, arms=arms) < 0.8 <= t_test_power(expected, 0.5, 1.0, arms=arms)


@pytest.mark.parametrize("arms", [1, 2])
def test_the_size_found_has_its_power_in_a_simulation(arms):
    """Draw data with the planned effect at the planned size: the t-test rejects in about 80% of the draws."""
    effect, sd, alpha = 0.3, 0.5, 0.05 / 4
    n = n_for_power(effect, sd, alpha=alpha, arms=arms)
    rng = np.random.default_rng(0)
    draws = 4000
    if arms == 1:
        data = rng.normal(effect, sd, size=(draws, n))
        p = st.ttest_1samp(data, 0.0, axis=1).pvalue
    else:
        a, b = rng.normal(effect, sd, size=(draws, n)), rng.normal(0.0, sd, size=(draws, n))
        p = st.ttest_ind(a, b, axis=1, equal_var=False).pvalue
    rate = float(np.mean(p < alpha))
    se = np.sqrt(0.8 * 0.2 / draws)
    assert 0.8 - 4 * se <= rate <= 0.8 + 4 * se + 0.05  # at least the power asked, at most a step above it
    smaller = st.ttest_1samp(rng.normal(effect, sd, size=(draws, max(2, n // 2))), 0.0, axis=1).pvalue \
        if arms == 1 else None
    if smaller is not None:
        assert np.mean(smaller < alpha) < 0.8 - 4 * se  # half the size clearly misses it


def test_a_power_out_of_reach_is_none_not_a_made_up_size():
    assert n_for_power(1e-6, 1.0) is None
    assert n_for_power(100.0, 1.0) == 2  # the smallest size a t-test has


@pytest.mark.parametrize("cells", [1, 2, 20, 75, 120])
def test_draws_for_rank_test_is_the_first_count_whose_floor_reaches_the_bar(cells):
    b = draws_for_rank_test(cells)
    assert 1 / (b + 1) <= 0.05 / cells + 1e-12
    assert b == 1 or 1 / b > 0.05 / cells


@pytest.mark.parametrize("call, exc, fragment", [
    (lambda: n_for_power(0.0, 1.0), ValueError, "effect"),
    (lambda: n_for_power(-0.2, 1.0), ValueError, "effect"),
    (lambda: n_for_power(0.5, float("nan")), ValueError, "sd"),
    (lambda: n_for_power(0.5, 1.0, alpha=5), ValueError, "alpha"),
    (lambda: n_for_power(0.5, 1.0, power=1.0), ValueError, "power"),
    (lambda: n_for_power(0.5, 1.0, arms=3), ValueError, "arms"),
    (lambda: n_for_power("0.5", 1.0), TypeError, "effect"),
    (lambda: n_for_power(0.5, True), TypeError, "sd"),
    (lambda: t_test_power(1, 0.5, 1.0), ValueError, "n"),
    (lambda: t_test_power(2.5, 0.5, 1.0), TypeError, "n"),
    (lambda: draws_for_rank_test(0), ValueError, "cells"),
    (lambda: draws_for_rank_test(10, alpha=0), ValueError, "alpha"),
])
def test_the_power_functions_refuse_bad_input(call, exc, fragment):
    with pytest.raises(exc, match=fragment):
        call()


def _parameter_defaults(chapter: str) -> dict[str, int]:
    """Plain ``name = N`` assignments of a chapter's parameters cell."""
    cells = json.loads((ROOT / "notebooks" / f"{chapter}.ipynb").read_text())["cells"]
    params = next("".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", []))
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+) = (\d+)\b", params, re.M)}


@pytest.mark.parametrize("chapter", sorted(power.PARAMETER_SIZES))
def test_the_table_judges_the_parameter_defaults_the_chapters_really_use(chapter):
    values = _parameter_defaults(chapter)
    for name, size in power.PARAMETER_SIZES[chapter].items():
        assert values.get(name) == size, f"{chapter}: {name} is {values.get(name)} in the notebook, {size} in power"


def test_the_table_reads_the_paper_sizes_from_the_chapters_sizes(monkeypatch):
    from gradlime_utils.experiments import ch06_normlime

    assert power.paper_sizes()["06_normlime"]["n_random"] == ch06_normlime.SIZES["n_random"].paper
    row = next(r for r in power.power_table(STORE) if r.chapter == "06_normlime")
    changed = gu.Sizes(**{**ch06_normlime.SIZES, "n_random": gu.Size(2, 19, 7)})
    monkeypatch.setattr(ch06_normlime, "SIZES", changed)
    assert next(r for r in power.power_table(STORE) if r.chapter == "06_normlime").n_used == 7 != row.n_used


def test_the_paper_profile_follows_the_table_or_says_why_not():
    rows = power.power_table(STORE)
    assert {r.chapter for r in rows} >= {"03_gad", "04_evaluation", "05_evolime", "06_normlime",
                                         "07_lime_heatmap_vs_gradcam"}
    for r in rows:
        assert r.enough or r.reason, f"{r.chapter} {r.quantity}: needs {r.n_needed}, uses {r.n_used}, no reason"
        if r.enough:
            assert r.gpu_hours <= power.DAY_HOURS
    lines = power.summary_lines(rows)
    assert len(lines) == len(rows) and all(("enough" in l) or ("too few" in l) for l in lines)


def test_the_spreads_come_from_the_store(tmp_path):
    """Doubling the measured spread of chapter 07's photos raises the photos it needs: nothing is typed in."""
    store = tmp_path / "ledger"
    shutil.copytree(STORE, store)
    before = {(r.chapter, r.unit): r for r in power.power_table(store)}
    path = store / "07_lime_heatmap_vs_gradcam" / "quick" / "results" / "heatmap_results.json"
    rows = json.loads(path.read_text())
    mean = np.mean([r["insertion LIME linear"] - r["insertion Grad-CAM"] for r in rows])
    for r in rows:  # stretch each gap around the mean by two: the spread doubles
        gap = r["insertion LIME linear"] - r["insertion Grad-CAM"]
        r["insertion LIME linear"] = r["insertion Grad-CAM"] + mean + 2 * (gap - mean)
    path.write_text(json.dumps(rows))
    after = {(r.chapter, r.unit): r for r in power.power_table(store)}
    key = ("07_lime_heatmap_vs_gradcam", "photos")
    assert after[key].spread == pytest.approx(2 * before[key].spread)
    assert after[key].n_needed > 3 * before[key].n_needed


def test_a_store_without_the_results_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="03_gad quick result"):
        power.power_table(tmp_path)
    with pytest.raises(FileNotFoundError, match="store must be"):
        power.power_table(tmp_path / "nowhere")


def test_the_reproducing_page_shows_the_table_of_the_store_and_its_prose_cites_it():
    page = (ROOT / "book" / "reproducing.md").read_text()
    table = power.format_power_table(power.power_table(STORE))
    assert power.render_into(page, table) == page, "regenerate: python -m gradlime_utils.runs.power --update " \
                                                   "book/reproducing.md"
    prose = page.split(power.END, 1)[1].split("Batch sizes", 1)[0]
    for number in re.findall(r"\d[\d,]*\d", prose):
        assert number in table, f"the prose cites {number}, which the table does not hold"


def test_check_prints_the_sizes_by_power(capsys):
    from gradlime_utils.runs import reproduce

    text = reproduce.power_report(STORE, ["06_normlime", "03_gad (dataset=cub_warbler_sparrow)"])
    assert "sizes by power" in text and "06_normlime" in text and "03_gad" in text
    assert "07_lime" not in text
    assert "not available" in reproduce.power_report(Path("/nonexistent"), ["06_normlime"])
