"""What held (issue 25): one verdict per claim, its rule calibrated under the null, the same words in the chapters."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from gradlime_utils.runs import claims
from gradlime_utils.metrics.stats import mean_ci

matplotlib.use("Agg")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("low, high, sesoi, decided, expected", [
    (0.1, 0.5, 0.05, None, claims.SUPPORTED),          # an interval above 0
    (-0.5, -0.1, 0.05, None, claims.NOT_SUPPORTED),    # the opposite holds
    (-0.01, 0.02, 0.05, None, claims.NOT_SUPPORTED),   # inside the smallest effect that matters
    (0.01, 0.02, 0.05, None, claims.NOT_SUPPORTED),    # above 0, but too small to matter
    (-0.2, 0.3, 0.05, None, claims.UNDECIDED),
    (0.1, 0.5, 0.05, False, claims.UNDECIDED),         # the chapter's calibrated test did not mark it
    (-0.2, 0.3, 0.05, True, claims.SUPPORTED),         # the chapter's calibrated test marked it
    (float("nan"), float("nan"), 0.05, None, claims.UNDECIDED),
    (0.1, 0.5, float("nan"), None, claims.SUPPORTED),  # a bound claim has no smallest effect
])
def test_the_verdict_rule(low, high, sesoi, decided, expected):
    assert claims.verdict_words(low, high, sesoi, decided) == expected


def test_the_verdict_rule_refuses_a_reversed_interval():
    with pytest.raises(ValueError, match="low must not exceed high"):
        claims.verdict_words(0.5, 0.1, 0.05)


@pytest.mark.parametrize("k, n", [(1, 4), (3, 4), (3, 8)])
def test_under_the_null_a_papers_verdicts_keep_their_error_rate(k, n):
    """Draw every measured claim of a paper from the null (true effect 0, n units each): at the page's interval
    level 1 - 0.05/k, the chance that any of the k claims reads 'supported' is at most 5% (plus 3 binomial SE),
    and a planted effect of two standard deviations is found most of the time."""
    rng = np.random.default_rng(k * 100 + n)
    level, trials = 1 - 0.05 / k, 4000
    any_supported, planted = 0, 0
    for _ in range(trials):
        verdicts = []
        for _ in range(k):
            mean, half = mean_ci(rng.normal(0.0, 1.0, n), level)
            verdicts.append(claims.verdict_words(mean - half, mean + half, float("nan")))
        any_supported += claims.SUPPORTED in verdicts
        mean, half = mean_ci(rng.normal(2.0, 1.0, 8), level)
        planted += claims.verdict_words(mean - half, mean + half, float("nan")) == claims.SUPPORTED
    rate = any_supported / trials
    assert rate <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / trials)
    assert planted / trials > 0.8


def test_every_claim_has_a_verdict_from_the_store():
    findings = claims.findings_from_store()
    assert [f.claim.key for f in findings] == [c.key for c in claims.CLAIMS]
    assert len({c.key for c in claims.CLAIMS}) == len(claims.CLAIMS)
    for f in findings:
        assert f.verdict in claims.VERDICTS
        if f.claim.measure is None:
            assert f.verdict == claims.NOT_TESTABLE and f.claim.needs
        else:
            m = f.measured
            assert np.isfinite(m.effect) and m.low <= m.effect <= m.high and m.evidence
    for paper in claims.PAPERS:  # every paper has a measured claim and one it says it cannot test
        mine = [f for f in findings if f.claim.paper == paper]
        assert any(f.measured for f in mine) and any(f.verdict == claims.NOT_TESTABLE for f in mine)


def test_the_verdicts_follow_the_results_not_a_typed_answer(tmp_path):
    """Plant a large GA gain on every photo of chapter 05's stored results: E1 turns to 'supported'; make LIME
    twenty times slower: 'ten times faster' turns to 'supported' too."""
    store = tmp_path / "ledger"
    shutil.copytree(claims.STORE, store)
    path = store / "05_evolime" / "quick" / "results" / "evolime_runs.json"
    rows = json.loads(path.read_text())
    before = {f.claim.key: f.verdict for f in claims.findings_from_store(store)}
    for k, r in enumerate(rows):
        r["gain_over_random"] = 0.3 + 0.01 * k
        r["lime_seconds"] = r["ga_seconds"] * 20 * (1 + 0.05 * k)
    path.write_text(json.dumps(rows))
    after = {f.claim.key: f.verdict for f in claims.findings_from_store(store)}
    assert before["E1"] != claims.SUPPORTED and after["E1"] == claims.SUPPORTED
    assert before["E2"] == claims.NOT_SUPPORTED and after["E2"] == claims.SUPPORTED
    assert {k: v for k, v in after.items() if k not in ("E1", "E2")} == \
        {k: v for k, v in before.items() if k not in ("E1", "E2")}


def _code(chapter: str) -> str:
    cells = json.loads((ROOT / "notebooks" / f"{chapter}.ipynb").read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells)


@pytest.mark.parametrize("chapter", ["02_gradlime", "03_gad", "04_evaluation", "05_evolime", "06_normlime",
                                     "07_lime_heatmap_vs_gradcam"])
def test_each_chapter_opens_with_its_papers_claims_and_closes_with_the_pages_words(chapter):
    source = _code(chapter)
    papers = re.findall(r'claims\.opening\("([^"]+)"\)', source)
    assert len(papers) == 1 and papers[0] in claims.PAPERS
    assert "{glue:md} claim_opening" in source
    tested = [c for c in claims.CLAIMS if c.chapter == chapter]
    if tested:
        assert f'claims.closing("{chapter}", out)' in source and "{glue:md} claim_closing" in source
        assert source.index("claim_opening") < source.index("claim_closing")
        # the closing lines are the page's sentences for this chapter's claims, in order
        page = {f.claim.key: claims.sentence(f) for f in claims.findings_from_store()}
        closing = claims.closing(chapter, claims.STORE / chapter / "quick" / "results")
        assert closing.split("\n") == [f"- {page[c.key]}" for c in tested]
    else:
        assert "claims.closing" not in source


def test_opening_and_closing_refuse_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="paper must be one of"):
        claims.opening("SHAP")
    with pytest.raises(ValueError, match="chapter must be one with claims"):
        claims.closing("01_lime", tmp_path)
    with pytest.raises(FileNotFoundError, match="store must be"):
        claims.findings_from_store(tmp_path / "none")
    # a chapter that has not run yet: its measured claims are undecided, never a made-up verdict
    text = claims.closing("05_evolime", tmp_path)
    assert text.count(claims.UNDECIDED) == 3 and "no evidence" in text


def test_the_forest_plot_colours_each_claim_by_its_verdict_on_one_axis_per_family():
    findings = claims.findings_from_store()
    for paper in claims.PAPERS:
        mine = [f for f in findings if f.claim.paper == paper and f.measured]
        fig = claims.forest_plot(findings, paper)
        families = {f.claim.family for f in mine}
        assert len(fig.axes) == len(families)
        dots = [line for ax in fig.axes for line in ax.get_lines() if line.get_marker() == "o"]
        colours = sorted(matplotlib.colors.to_hex(d.get_color()) for d in dots)
        assert colours == sorted(claims.COLOURS[f.verdict] for f in mine)
        matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="paper must have measured claims"):
        claims.forest_plot(findings, "SHAP")


def test_the_what_held_page_is_first_in_the_book_and_linked_from_the_intro():
    toc = (ROOT / "_toc.yml").read_text()
    assert toc.index("book/what_held") < toc.index("notebooks/00_setup_and_models")
    intro = (ROOT / "book" / "intro.md").read_text()
    first_link = re.search(r"\]\(([^)]+)\)", intro).group(1)
    assert first_link == "what_held.ipynb"
    page = json.loads((ROOT / "book" / "what_held.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in page["cells"] if c["cell_type"] == "code")
    assert "claims.forest_plot" in code and "claims.table" in code
    assert all(not c.get("outputs") for c in page["cells"] if c["cell_type"] == "code")
    text = "\n".join("".join(c["source"]) for c in page["cells"] if c["cell_type"] == "markdown")
    for verdict in claims.VERDICTS:
        assert verdict in text  # the vocabulary is defined on the page


def test_gad_without_its_null_control_is_undecided_not_an_error(tmp_path):
    """The paper rehearsal's `-p null=None` run of chapter 03 has no real - null rows: its claims read
    'undecided' for want of evidence (this crashed the rehearsal once)."""
    results = json.loads((claims.STORE / "03_gad" / "quick" / "results" / "gad_tables.json").read_text())
    results["null_comparison"] = []
    (tmp_path / "gad_tables.json").write_text(json.dumps(results))
    text = claims.closing("03_gad", tmp_path)
    assert text.count(claims.UNDECIDED) == 2 and "ran without the null" in text
