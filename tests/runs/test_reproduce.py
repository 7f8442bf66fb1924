"""The reproduce command: bad requests fail before anything runs; a failing chapter leaves the others intact."""
import json

import pytest

from gradlime_utils.runs.reproduce import main, parse_parameter, plan_runs, ReproduceError


OK = ("from pathlib import Path\nimport json\nout = Path(output_dir); out.mkdir(parents=True, exist_ok=True)\n"
      "json.dump({'profile': profile, 'value': 2 * scale, 'seed': seed}, open(out / 'result.json', 'w'))")


@pytest.fixture
def book(toy_book):
    return toy_book({"01_ok": OK, "02_bad": OK + "\nif scale == 3:\n    raise RuntimeError('chapter broke')"})


def run(book, *args):
    nbs, out = book
    return main(["--notebooks", str(nbs), "--out", str(out), "--device", "cpu", *args])


def test_runs_writes_manifests_and_skips_a_matching_rerun(book, capsys):
    nbs, out = book
    assert run(book, "--chapter", "all", "--profile", "smoke", "-p", "scale=2") == 0
    result = json.loads((out / "01_ok" / "smoke" / "results" / "result.json").read_text())
    assert result == {"profile": "smoke", "value": 4, "seed": 0}
    manifest = json.loads((out / "01_ok" / "smoke" / "manifest.json").read_text())
    assert manifest["parameters"] == {"profile": "smoke", "device": "cpu", "seed": 0, "scale": 2}
    assert set(manifest["files"]) == {"01_ok.ipynb", "kernel.log", "results/result.json"}
    assert manifest["git"]["commit"] is None or len(manifest["git"]["commit"]) == 40
    capsys.readouterr()
    assert run(book, "--chapter", "01_ok", "--profile", "smoke", "-p", "scale=2") == 0
    assert "skipped 01_ok" in capsys.readouterr().err
    assert run(book, "--chapter", "01_ok", "--profile", "smoke", "-p", "scale=5") == 0  # new parameters: runs
    assert json.loads((out / "01_ok" / "smoke" / "results" / "result.json").read_text())["value"] == 10
    (out / "01_ok" / "smoke" / "results" / "result.json").write_text("tampered")
    capsys.readouterr()
    assert run(book, "--chapter", "01_ok", "--profile", "smoke", "-p", "scale=5") == 0  # a changed file: reruns
    assert "ok      01_ok" in capsys.readouterr().err


def test_a_failing_chapter_exits_non_zero_and_leaves_the_other_results_intact(book, capsys):
    nbs, out = book
    assert run(book, "--chapter", "all", "--profile", "smoke", "-p", "scale=1") == 0
    before = (out / "02_bad" / "smoke" / "manifest.json").read_text()
    assert run(book, "--chapter", "all", "--profile", "smoke", "-p", "scale=3") == 1
    err = capsys.readouterr().err
    assert "FAILED  02_bad" in err and "chapter broke" in err and "1 of 2 chapter(s) failed: 02_bad" in err
    assert json.loads((out / "01_ok" / "smoke" / "results" / "result.json").read_text())["value"] == 6
    assert (out / "02_bad" / "smoke" / "manifest.json").read_text() == before  # previous good run untouched
    assert not [p for p in (out / "02_bad").iterdir() if p.name != "smoke"]  # no temporary folders left


@pytest.mark.parametrize("args, message", [
    (["--chapter", "99_nope", "--profile", "smoke"], "unknown chapter '99_nope'"),
    (["--chapter", "all", "--profile", "huge"], "unknown profile 'huge'"),
    (["--chapter", "all", "--profile", "smoke", "--device", "tpu"], "unknown device 'tpu'"),
    (["--chapter", "01_ok", "--profile", "smoke", "-p", "alpha=2"], "does not declare parameter(s) ['alpha']"),
    (["--chapter", "01_ok", "--profile", "smoke", "-p", "output_dir=x"], "set by reproduce itself"),
    (["--chapter", "01_ok", "--profile", "smoke", "-p", "novalue"], "must look like key=value"),
])
def test_bad_requests_fail_before_anything_runs(book, capsys, args, message):
    nbs, out = book
    assert main(["--notebooks", str(nbs), "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_an_unwritable_output_folder_is_a_clear_error(book, tmp_path, capsys):
    nbs, _ = book
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert main(["--notebooks", str(nbs), "--out", str(blocker / "results"), "--chapter", "all",
                 "--profile", "smoke"]) == 2
    assert "is not writable" in capsys.readouterr().err


def test_parameter_values_are_read_as_literals():
    assert parse_parameter("alphas=[2, 4]") == ("alphas", [2, 4])
    assert parse_parameter("data_root=/data/pets") == ("data_root", "/data/pets")
    assert parse_parameter("x=None") == ("x", None)
    with pytest.raises(ReproduceError, match="not a valid name"):
        parse_parameter("1x=2")


def test_the_real_chapters_declare_the_common_parameters(tmp_path):
    plans = plan_runs("all", "smoke", "cpu", tmp_path, {"seed": 1})
    assert len(plans) >= 8 and all(p.parameters["seed"] == 1 for p in plans)
    with pytest.raises(ReproduceError, match="03_gad does not declare"):
        plan_runs("03_gad", "smoke", "cpu", tmp_path, {"image_names": ["x"]})


def test_a_size_given_with_p_goes_into_the_chapters_sizes_parameter(tmp_path):
    """``-p per_class=4`` reaches chapter 03 as ``sizes={"per_class": 4}``, checked against the kind of its paper
    value; a size the chapter does not have, or of the wrong kind, stops the run before anything starts."""
    (plan,) = plan_runs("03_gad", "paper", "cpu", tmp_path, {"per_class": 4, "epochs": 1, "arch": "vgg16"})
    assert plan.parameters["sizes"] == {"per_class": 4, "epochs": 1} and plan.parameters["arch"] == "vgg16"
    assert "per_class" not in plan.parameters
    (plan,) = plan_runs("03_gad", "quick", "cpu", tmp_path, {"sizes": {"trainings": 3}, "per_class": 4})
    assert plan.parameters["sizes"] == {"trainings": 3, "per_class": 4}
    (plan,) = plan_runs("03_gad", "quick", "cpu", tmp_path, {})
    assert "sizes" not in plan.parameters  # a run without overrides records the same parameters as before
    with pytest.raises(ReproduceError, match=r"03_gad has no size\(s\) \['n_perm'\]"):
        plan_runs("03_gad", "quick", "cpu", tmp_path, {"sizes": {"n_perm": 3}})
    with pytest.raises(ReproduceError, match="per_class.*must be an integer"):
        plan_runs("03_gad", "quick", "cpu", tmp_path, {"per_class": 2.5})
    with pytest.raises(ReproduceError, match="sizes must be a dict"):
        plan_runs("03_gad", "quick", "cpu", tmp_path, {"sizes": "per_class=4"})
    with pytest.raises(ReproduceError, match=r"does not declare parameter\(s\) \['n_perm'\].*and the sizes"):
        plan_runs("03_gad", "quick", "cpu", tmp_path, {"n_perm": 3})


def test_relative_paths_resolve_against_the_callers_folder(book, tmp_path, monkeypatch, write_chapter):
    nbs, _ = book
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "data").mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    write_chapter(nbs, "03_paths", OK.replace("'seed': seed}", "'seed': seed, 'root': str(root)}"),
                  extra_parameters="\nroot = None")
    assert main(["--notebooks", str(nbs), "--out", "runs/r1", "--device", "cpu", "--chapter", "03_paths",
                 "--profile", "smoke", "-p", "root=data"]) == 0
    final = elsewhere / "runs" / "r1" / "03_paths" / "smoke"
    result = json.loads((final / "results" / "result.json").read_text())
    assert result["root"] == str(elsewhere / "data")
    manifest = json.loads((final / "manifest.json").read_text())
    assert "results/result.json" in manifest["files"]
    assert not list(nbs.rglob("runs")) and not list(nbs.rglob("result.json"))  # nothing inside the notebooks folder


def test_force_and_a_corrupt_manifest_keep_the_users_own_files(book):
    nbs, out = book
    assert run(book, "--chapter", "01_ok", "--profile", "smoke") == 0
    final = out / "01_ok" / "smoke"
    (final / "my_analysis.txt").write_text("mine")
    (final / "results" / "notes.md").write_text("also mine")
    assert run(book, "--chapter", "01_ok", "--profile", "smoke", "--force") == 0
    assert (final / "my_analysis.txt").read_text() == "mine"
    assert (final / "results" / "notes.md").read_text() == "also mine"
    (final / "manifest.json").write_text("{ not json")
    assert run(book, "--chapter", "01_ok", "--profile", "smoke") == 0
    assert (final / "my_analysis.txt").read_text() == "mine" and json.loads((final / "manifest.json").read_text())
    assert not [p for p in (out / "01_ok").iterdir() if p.name != "smoke"]


@pytest.mark.parametrize("point", ["papermill", "pdf", "install"])
def test_an_interrupt_leaves_earlier_results_and_no_staging_folder(book, monkeypatch, capsys, point):
    import gradlime_utils.runs.reproduce as rp

    nbs, out = book
    assert run(book, "--chapter", "01_ok", "--profile", "smoke") == 0
    final = out / "01_ok" / "smoke"
    (final / "mine.txt").write_text("mine")
    before = (final / "results" / "result.json").read_text()

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    target = {"papermill": ("papermill", "execute_notebook"), "pdf": (rp, "_pdf_companions"),
              "install": (rp, "_carry_user_files")}[point]
    if target[0] == "papermill":
        import papermill
        monkeypatch.setattr(papermill, "execute_notebook", interrupt)
    else:
        monkeypatch.setattr(target[0], target[1], interrupt)
    capsys.readouterr()
    assert run(book, "--chapter", "01_ok", "--profile", "smoke", "--force", "-p", "scale=7") == 130
    err = capsys.readouterr().err
    assert "interrupted during 01_ok" in err and "Traceback" not in err
    monkeypatch.undo()
    leftovers = [p.name for p in (out / "01_ok").iterdir() if p.name != "smoke"]
    assert not [n for n in leftovers if "running" in n]
    if point != "install":
        assert (final / "results" / "result.json").read_text() == before and (final / "mine.txt").exists()
    # the next run cleans up and nothing of the user's is lost
    assert run(book, "--chapter", "01_ok", "--profile", "smoke", "-p", "scale=2") == 0
    assert (final / "mine.txt").read_text() == "mine"
    assert sorted(p.name for p in (out / "01_ok").iterdir()) == ["smoke"]


def test_a_real_sigint_exits_130_with_one_line(book, tmp_path, write_chapter):
    import os
    import signal
    import subprocess
    import sys
    import time

    nbs, out = book
    started = tmp_path / "cell-started"  # written by the kernel when it is inside the sleeping cell
    # the cell sleeps far longer than the test waits, so only the interrupt can end the run in time
    write_chapter(nbs, "04_slow", f"import pathlib, time\npathlib.Path({str(started)!r}).touch()\ntime.sleep(900)")
    proc = subprocess.Popen([sys.executable, "-m", "gradlime_utils.runs.reproduce", "--notebooks", str(nbs), "--out",
                             str(out), "--chapter", "04_slow", "--profile", "smoke", "--device", "cpu"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    deadline = time.time() + 120  # a loaded machine starts a kernel slowly: wait for the cell, not a fixed time
    while time.time() < deadline and not started.exists():
        time.sleep(0.2)
    assert started.exists(), "the chapter's kernel never reached its cell"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)  # interrupting and shutting down a kernel is slow on a loaded machine
    assert proc.returncode == 130
    assert "interrupted during 04_slow" in err and "Traceback" not in err
    assert not list((out / "04_slow").glob(".*running*"))


def test_manifest_device_record_names_the_device():
    import torch

    from gradlime_utils.runs.reproduce import ReproduceError, device_record

    assert device_record("cpu") == {"requested": "cpu", "resolved": "cpu"}
    if torch.cuda.is_available():  # on a GPU machine: the GPU's name and the CUDA/cuDNN versions
        record = device_record("cuda")
        assert record["name"] and record["cuda"] and record["memory_gib"] > 0
    else:
        with pytest.raises(ReproduceError, match="no CUDA device"):
            device_record("cuda")
        assert device_record("auto")["resolved"] == "cpu"


def test_the_code_hash_covers_sub_packages_and_package_data(tmp_path, monkeypatch):
    """A rerun is skipped only when nothing that decides the results changed: a module in a sub-package or a data
    file of the package (the GAD paper's tables) changes the hash too."""
    from gradlime_utils.runs import reproduce

    package = tmp_path / "pkg"
    (package / "runs").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (package / "runs" / "b.py").write_text("y = 2\n")
    (package / "tables.json").write_text("{}\n")
    notebook = tmp_path / "00.ipynb"
    notebook.write_text("{}")
    monkeypatch.setattr(reproduce, "PACKAGE_DIR", package)
    seen = {reproduce.code_hash(notebook)}
    for path, text in ((package / "runs" / "b.py", "y = 3\n"), (package / "tables.json", '{"a": 1}\n'),
                       (notebook, '{"cells": []}')):
        path.write_text(text)
        seen.add(reproduce.code_hash(notebook))
    (package / "runs" / "__pycache__").mkdir()
    (package / "runs" / "__pycache__" / "b.cpython.pyc").write_bytes(b"\0")
    seen.add(reproduce.code_hash(notebook))
    assert len(seen) == 4  # three changes, each a new hash; compiled caches are not sources
