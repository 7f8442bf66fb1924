"""The reproduction ledger is built from real manifests and stays in sync with them."""
import json
from pathlib import Path

import pytest


from gradlime_utils.runs.ledger import ITEMS, compare, main, render, verify
from gradlime_utils.runs.reproduce import sha256_file

REPO = Path(__file__).resolve().parents[2]


def test_the_committed_ledger_is_rebuilt_exactly_from_the_stored_manifests():
    stored = REPO / "book" / "ledger"
    manifests = sorted(stored.glob("*/*/manifest.json"))
    assert len(manifests) >= 8, "book/ledger holds the manifests of a full reproduce run"
    for path in manifests:
        m = json.loads(path.read_text())
        assert m["status"] == "ok" and m["profile"] in ("quick", "paper") and len(m["git"]["commit"]) == 40
    assert verify(stored) == []  # every stored data file is the one its manifest hashed
    assert render(stored) == (REPO / "book" / "reproduction.md").read_text()


def fake_run(results: Path, chapter: str, files: dict[str, str], profile: str = "quick") -> Path:
    folder = results / chapter / profile
    (folder / "results").mkdir(parents=True)
    for name, text in files.items():
        (folder / "results" / name).write_text(text)
    manifest = {"status": "ok", "profile": profile, "chapter": chapter, "git": {"commit": "a" * 40, "dirty": False},
                "device": {"requested": "cpu", "resolved": "cpu"}, "wall_seconds": 1.0,
                "files": {f"results/{n}": sha256_file(folder / "results" / n) for n in files}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_ledger_shows_measured_numbers_status_and_command(tmp_path):
    lime = {"model": "m", "image": "chelsea", "label_name": "Egyptian cat", "num_samples": 1000,
            "num_superpixels": 34, "score": 0.66}
    fake_run(tmp_path, "01_lime", {"lime_explanation.json": json.dumps(lime), "L-1_lime_explanation.png": "png"})
    page = render(tmp_path)
    row = next(line for line in page.splitlines() if line.startswith("| L-1 "))
    assert "partly reproduced" in row and "Egyptian cat, N = 1000, 34 superpixels, surrogate R² 0.66" in row
    assert "stand-in" in row
    # the command is listed below the table, once for the items it regenerates (the table stays narrow)
    lines = page.splitlines()
    command = next(line for line in lines if line.startswith("- ") and "L-1" in line.split(":")[0])
    assert "`python -m gradlime_utils.runs.reproduce --chapter 01_lime --profile quick --out results`" in command
    assert lines.index(command) > lines.index(row)
    assert next(line for line in page.splitlines() if line.startswith("| G-2 ")).split("|")[3].strip() == "not run"
    assert all(f"| {item.id} |" in page for item in ITEMS)
    assert all(any(item.id in line.split(":")[0] for line in lines if line.startswith("- ")) for item in ITEMS)
    assert "| id | item | status | ours | beyond chance / null | paper |" in page


def test_store_copies_data_and_verify_catches_tampering(tmp_path):
    results, stored = tmp_path / "results", tmp_path / "stored"
    fake_run(results, "05_evolime", {"evolime_runs.json": "[]", "E-1_evolved_vs_lime.png": "binary"})
    assert main(["--results", str(results), "--store", str(stored), "--out", str(tmp_path / "page.md")]) == 0
    assert (stored / "05_evolime" / "quick" / "results" / "evolime_runs.json").read_text() == "[]"
    assert not (stored / "05_evolime" / "quick" / "results" / "E-1_evolved_vs_lime.png").exists()  # figures not kept
    assert "figure `E-1_evolved_vs_lime.png`" in render(stored)  # named from the manifest
    assert verify(stored) == []
    (stored / "05_evolime" / "quick" / "results" / "E-1_evolved_vs_lime.png").write_text("")  # a 0-byte marker
    assert verify(stored)  # is a file whose hash differs, like any other
    (stored / "05_evolime" / "quick" / "results" / "E-1_evolved_vs_lime.png").unlink()
    (stored / "05_evolime" / "quick" / "results" / "evolime_runs.json").write_text("[1]")
    assert verify(stored) and main(["--results", str(stored), "--out", str(tmp_path / "p2.md")]) == 1
    assert main(["--results", str(tmp_path / "missing"), "--out", str(tmp_path / "p3.md")]) == 2


def test_a_rerun_is_compared_with_the_store_number_by_number_timings_aside(tmp_path, capsys):
    """Issue 24: a refactoring shows that behaviour held by a rerun that equals the store, timings aside."""
    def run(results, score, seconds, rows):
        table = "method,score,seconds\n" + "".join(f"{m},{v},{seconds}\n" for m, v in rows)
        runs = [{"gain": score, "seconds": seconds, "queries": 400, "cached": seconds > 50}]
        folder = fake_run(results, "05_evolime", {"evolime_runs.json": json.dumps(runs), "lime_stability.csv": table})
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest |= {"wall_seconds": seconds, "model_queries": {"calls": 4, "seconds": seconds}, "seed": 0}
        (folder / "manifest.json").write_text(json.dumps(manifest))

    stored = tmp_path / "stored"
    run(tmp_path / "old", 0.25, 10.0, [("GA", 0.5)])
    assert main(["--results", str(tmp_path / "old"), "--store", str(stored), "--out", str(tmp_path / "p.md")]) == 0
    run(tmp_path / "same", 0.25, 99.0, [("GA", 0.5)])  # slower, same numbers
    assert compare(stored, tmp_path / "same") == []
    run(tmp_path / "moved", 0.26, 10.0, [("GA", 0.5 + 1e-6)])
    differences = compare(stored, tmp_path / "moved")
    assert any("evolime_runs.json[0].gain: 0.25 in the store, 0.26" in d for d in differences)
    assert any("lime_stability.csv[0].score" in d for d in differences) and len(differences) == 2
    page = tmp_path / "page.md"
    assert main(["--results", str(tmp_path / "moved"), "--compare", str(stored), "--out", str(page)]) == 1
    assert not page.exists() and "differs: 05_evolime evolime_runs.json[0].gain" in capsys.readouterr().out
    assert main(["--results", str(tmp_path / "same"), "--compare", str(stored), "--out", str(page)]) == 0
    assert main(["--results", str(tmp_path / "same"), "--compare", str(tmp_path), "--out", str(page)]) == 2


def test_a_store_made_on_another_cpu_is_named_beside_the_comparison(tmp_path, capsys):
    """Numbers equal bit for bit only on one kind of processor: --compare says which chapters were stored on
    another CPU (or on one it cannot name), so a float32-sized difference is not read as a change of behaviour."""
    from gradlime_utils.runs.ledger import machine_notes
    from gradlime_utils.runtime import cpu_record

    avx512 = cpu_record("model name\t: Xeon A\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f\n")
    assert avx512 == {"model": "Xeon A", "simd": ["sse4_2", "avx", "avx2", "fma", "avx512f"]}
    avx2 = cpu_record("model name\t: Xeon A\nflags\t\t: fpu sse4_2 avx avx2 fma\n")
    for name, cpu in (("old", avx512), ("same", avx512), ("other", avx2)):
        folder = fake_run(tmp_path / name, "05_evolime", {"evolime_runs.json": "[]"})
        manifest = json.loads((folder / "manifest.json").read_text())
        (folder / "manifest.json").write_text(json.dumps(manifest | {"cpu": cpu}))
    assert machine_notes(tmp_path / "old", tmp_path / "same") == []
    assert machine_notes(tmp_path / "old", tmp_path / "other") == [
        "05_evolime: stored on Xeon A (sse4_2, avx, avx2, fma, avx512f), rerun on Xeon A (sse4_2, avx, avx2, fma)"]
    assert main(["--results", str(tmp_path / "other"), "--compare", str(tmp_path / "old"),
                 "--out", str(tmp_path / "page.md")]) == 0  # equal numbers: the note, no failure
    assert "note: 05_evolime: stored on Xeon A" in capsys.readouterr().err
    assert set(cpu_record()) == {"model", "simd"}  # this machine's, as a manifest records it


def test_a_corrupt_manifest_or_an_unwritable_destination_is_one_clear_line(tmp_path, capsys):
    results = tmp_path / "results"
    fake_run(results, "05_evolime", {"evolime_runs.json": "[]"})
    bad = results / "05_evolime" / "quick" / "manifest.json"
    good = bad.read_text()
    bad.write_text("{ truncated")
    assert main(["--results", str(results), "--out", str(tmp_path / "page.md")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "unreadable" in err and "Traceback" not in err
    bad.write_text(good)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    assert main(["--results", str(results), "--out", str(blocker / "page.md")]) == 2
    assert f"cannot write {blocker / 'page.md'}" in capsys.readouterr().err
    assert main(["--results", str(results), "--store", str(blocker / "store"), "--out",
                 str(tmp_path / "p.md")]) == 2
    assert "ledger: error: cannot write" in capsys.readouterr().err


def test_every_cost_line_is_measured_not_typed():
    """The teaching page's costs are the manifests' (rewritten by `ledger --costs`), every chapter's header cites
    its glued cost, and no chapter types a quick-profile duration of its own."""
    import json
    import re

    from gradlime_utils.runs import ledger as real_ledger

    root = Path(__file__).resolve().parents[2]
    teaching = (root / "book" / "teaching.md").read_text()
    costed = set(re.findall(r"<!-- cost (\S+) -->", teaching))
    assert costed == {p.stem for p in (root / "notebooks").glob("*.ipynb")}
    assert real_ledger.render_costs(teaching) == teaching, \
        "regenerate: python -m gradlime_utils.runs.ledger --results book/ledger --costs book/teaching.md"
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        header = "".join(cells[0]["source"])
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        assert "{glue:md}`cost_quick`" in header, path.name
        assert f'cost_text("{path.stem}", missing_ok=True)' in code, path.name
        assert not re.search(r"`quick`( profile)? about \d", header), path.name
    assert "not measured here" in real_ledger.cost_text("01_lime", store=root / "nowhere", missing_ok=True)
    with pytest.raises(FileNotFoundError, match="no quick manifest"):
        real_ledger.cost_text("01_lime", store=root / "nowhere")
