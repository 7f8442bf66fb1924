"""Sweeps on a Dask LocalCluster with two workers: every point runs, the merge ignores completion order."""
import csv
import json

import pytest

from gradlime_utils.runs.reproduce import ReproduceError
from gradlime_utils.runs.sweep import main, parse_grid, point_id


# larger scales finish first, so completion order is the reverse of the merge order
BODY = ("import time\nfrom pathlib import Path\ntime.sleep(0.8 * (4 - scale))\n"
        "if scale == 99:\n    raise RuntimeError('bad point')\n"
        "out = Path(output_dir); out.mkdir(parents=True, exist_ok=True)\n"
        "(out / 'table.csv').write_text(f'name,value\\nrow,{2 * scale}\\n')")


@pytest.fixture
def book(toy_book):
    return toy_book({"01_toy": BODY})


@pytest.mark.slow
def test_two_workers_merge_in_point_order_whatever_the_completion_order(book, capsys):
    nbs, out = book
    code = main(["--notebooks", str(nbs), "--out", str(out), "--chapter", "01_toy", "--profile", "smoke",
                 "--device", "cpu", "--grid", "scale=[3,1,2]", "--workers", "2"])
    assert code == 0, capsys.readouterr().err
    sweep = out / "01_toy" / "smoke" / "sweep"
    summary = json.loads((sweep / "sweep.json").read_text())
    assert [p["point"] for p in summary["points"]] == [{"scale": 1}, {"scale": 2}, {"scale": 3}]
    assert all(p["status"] == "ok" for p in summary["points"])
    rows = list(csv.reader(open(sweep / "merged" / "table.csv")))
    assert rows == [["scale", "name", "value"], ["1", "row", "2"], ["2", "row", "4"], ["3", "row", "6"]]
    for p in summary["points"]:
        manifest = json.loads((sweep / p["id"] / "manifest.json").read_text())
        assert manifest["parameters"]["scale"] == p["point"]["scale"] and manifest["status"] == "ok"


@pytest.mark.slow
def test_a_failing_point_is_reported_and_the_others_are_merged(book, capsys):
    nbs, out = book
    code = main(["--notebooks", str(nbs), "--out", str(out), "--chapter", "01_toy", "--profile", "smoke",
                 "--device", "cpu", "--grid", "scale=[3,99]", "--workers", "2"])
    assert code == 1
    assert "FAILED  scale=99: PapermillExecutionError" in capsys.readouterr().err
    sweep = out / "01_toy" / "smoke" / "sweep"
    statuses = {p["id"]: p["status"] for p in json.loads((sweep / "sweep.json").read_text())["points"]}
    assert statuses == {"scale=3": "ok", "scale=99": "failed"}
    assert list(csv.reader(open(sweep / "merged" / "table.csv")))[1:] == [["3", "row", "6"]]
    assert not (sweep / "scale=99").exists()


def test_bad_sweeps_fail_before_anything_runs(book, capsys):
    nbs, out = book
    base = ["--notebooks", str(nbs), "--out", str(out), "--profile", "smoke"]
    assert main(base + ["--chapter", "01_toy"]) == 2 and "at least one --grid" in capsys.readouterr().err
    assert main(base + ["--chapter", "01_toy", "--grid", "alpha=[1,2]"]) == 2
    assert "does not declare parameter(s) ['alpha']" in capsys.readouterr().err
    assert main(base + ["--chapter", "01_toy", "--grid", "scale=[1]", "-p", "scale=2"]) == 2
    assert "both swept" in capsys.readouterr().err
    assert main(base + ["--chapter", "all", "--grid", "scale=[1]"]) == 2
    assert not out.exists()
    with pytest.raises(ReproduceError, match="non-empty list"):
        parse_grid(["scale=3"])
    assert parse_grid(["dataset=[oxford_pets,cub_warbler_sparrow]", "seed=[0,1]"]) == {
        "dataset": ["oxford_pets", "cub_warbler_sparrow"], "seed": [0, 1]}
    assert point_id({"b": 1, "a": "x y"}) == 'a=-x-y-__b=1'


@pytest.mark.slow
def test_a_real_chapter_sweeps_over_seeds_on_two_workers(tmp_path):
    out = tmp_path / "results"
    assert main(["--chapter", "05_evolime", "--profile", "smoke", "--device", "cpu", "--out", str(out),
                 "--grid", "seed=[1,0]", "--workers", "2"]) == 0
    sweep = out / "05_evolime" / "smoke" / "sweep"
    rows = list(csv.DictReader(open(sweep / "merged" / "evolime_runs.csv")))
    assert [r["seed"] for r in rows] == ["0", "1"]
    assert all(float(r["evolved_mean"]) > 0 and float(r["random_mean"]) > 0 for r in rows)


def test_a_sweep_refuses_to_start_when_its_grid_needs_missing_files(tmp_path, monkeypatch, capsys):
    """Every point's needs are checked before any worker starts: a sweep over GAD's two datasets on an empty
    machine names what is missing for each point and runs nothing."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("GRADLIME_DATA", str(tmp_path / "data"))
    out = tmp_path / "results"
    code = main(["--chapter", "03_gad", "--profile", "paper", "--out", str(out),
                 "--grid", "dataset=[oxford_pets,cub_warbler_sparrow]"])
    err = capsys.readouterr().err
    assert code == 2 and "the grid needs files that are missing" in err
    assert err.count("03_gad (dataset=") == 2 and "MISSING dataset cub_warbler_sparrow" in err
    assert "MISSING dataset oxford_pets" in err and "MISSING weights resnet18" in err
    assert not list(out.rglob("manifest.json"))  # no point ran
