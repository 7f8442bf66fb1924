"""Every chapter executes top to bottom through papermill in the smoke profile."""
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test here runs chapters

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))

# Files each chapter must write to output_dir in the smoke profile.
EXPECTED_OUTPUTS = {
    "00_setup_and_models": ["sample_predictions.png", "sample_predictions.pdf", "mnist_pair.png", "summary.json"],
    "02_gradlime": ["G-1_framework.png", "G-2_black_boxes.png", "G-3_layers.png", "G-4_feature_weights.png",
                    "gradlime_results.json"],
    "03_gad": ["D-1_distancing.png", "D-3_support_maps.png", "D-5_methods.png", "D-6_hulls.png",
               "gad_tables.json", "gad_records.csv", "gad_table1.csv", "gad_table2.csv"],
    "04_evaluation": ["attribution_maps.png", "evaluation_scores.csv", "evaluation_tables.json", "stability.png",
                      "stability.csv", "benchmark_examples.png", "localisation_maps.png", "localisation_scores.csv"],
    "05_evolime": ["evolime_run.png", "evolime_runs.json", "evolime_runs.csv", "E-1_evolved_vs_lime.png"],
    "06_normlime": ["N-1_digits_9_and_3.png", "N-2_kar.png", "normlime_kar.json"],
    "07_lime_heatmap_vs_gradcam": ["H-2_lime_vs_gradcam.png", "H-2_lime_vs_gradcam.pdf", "H-3_sensitivity.png",
                                   "deletion_insertion.png", "heatmap_results.json", "heatmap_results.csv"],
    "01_lime": ["L-1_lime_explanation.png", "L-1_lime_explanation.pdf", "lime_stability.csv", "lime_explanation.json"],
}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """`reproduce --chapter all --profile smoke` once, as a user would run it; every chapter test reads it."""
    from gradlime_utils.runs.reproduce import main

    out = tmp_path_factory.mktemp("reproduce")
    code = main(["--chapter", "all", "--profile", "smoke", "--device", "cpu", "--out", str(out)])
    return out, code


def test_reproduce_all_in_smoke_profile_succeeds(smoke_run):
    out, code = smoke_run
    assert code == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [nb.stem for nb in NOTEBOOKS]


@pytest.mark.notebook
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_profile(notebook, smoke_run):
    from gradlime_utils.runs.reproduce import sha256_file

    out, _ = smoke_run
    folder = out / notebook.stem / "smoke"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["parameters"]["profile"] == "smoke"
    assert manifest["device"] == {"requested": "cpu", "resolved": "cpu"} and manifest["seed"] == 0
    assert set(manifest["cpu"]) == {"model", "simd"}  # numbers equal bit for bit only on one kind of CPU
    assert manifest["versions"]["torch"] and len(manifest["code_sha256"]) == 64
    for name in EXPECTED_OUTPUTS.get(notebook.stem, []):
        assert (folder / "results" / name).is_file(), f"{notebook.stem} did not write {name}"
    for png in (folder / "results").rglob("*.png"):
        assert png.with_suffix(".pdf").is_file()
    assert manifest["files"] and all(sha256_file(folder / rel) == digest for rel, digest in manifest["files"].items())
    executed = json.loads((folder / f"{notebook.stem}.ipynb").read_text())
    errors = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors


def test_setup_chapter_reports_a_cat_for_chelsea(tmp_path):
    import papermill as pm

    nb = NOTEBOOKS[0]
    assert nb.stem == "00_setup_and_models"
    pm.execute_notebook(str(nb), str(tmp_path / "00.ipynb"), cwd=str(nb.parent), kernel_name="python3",
                        parameters={"profile": "smoke", "output_dir": str(tmp_path / "o")}, progress_bar=False)
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    top_index = summary["predictions"]["efficientnet_lite0"]["chelsea"][0][0]
    assert 281 <= top_index <= 285
    assert summary["mnist_cnn"]["test_accuracy"] > 0.95


def test_a_bad_profile_stops_the_chapter_with_a_clear_error(tmp_path):
    import papermill as pm

    nb = NOTEBOOKS[0]
    with pytest.raises(pm.PapermillExecutionError, match="profile must be one of"):
        pm.execute_notebook(str(nb), str(tmp_path / "bad.ipynb"), cwd=str(nb.parent), kernel_name="python3",
                            parameters={"profile": "huge", "output_dir": str(tmp_path / "o")}, progress_bar=False)


def test_every_chapter_manifest_says_where_its_time_went(smoke_run):
    out, _ = smoke_run
    for nb in NOTEBOOKS:
        manifest = json.loads((out / nb.stem / "smoke" / "manifest.json").read_text())
        queries = manifest["model_queries"]
        assert sum(m["images"] for m in queries["models"].values()) > 0, nb.stem
        assert 0 <= queries["seconds_outside_model"] <= manifest["wall_seconds"]
