"""The paper path before anyone pays for a GPU: the pre-flight check, the fixtures in the real layouts, the
rehearsal's coverage of every chapter's paper branch, and memory-safe batches for 224-pixel images."""
import json

import pytest
import torch

import gradlime_utils as gu
from gradlime_utils.runs import fixtures
from gradlime_utils.runs import paper
from gradlime_utils.runs import rehearse
from gradlime_utils.runs import reproduce


def _env(monkeypatch, torch_home, data):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setenv("GRADLIME_DATA", str(data))


def test_check_on_an_empty_machine_lists_every_missing_item_with_its_fetch_command(tmp_path, monkeypatch, capsys):
    _env(monkeypatch, tmp_path / "torch", tmp_path / "data")
    code = reproduce.main(["--chapter", "all", "--profile", "paper", "--check"])
    report = capsys.readouterr().out
    assert code == 1
    for arch in ("resnet18", "vgg16", "googlenet", "squeezenet1_1", "densenet121", "mobilenet_v2"):
        assert f"MISSING weights {arch}" in report
        assert f"{paper.FETCH} --weights {arch}" in report
    assert "MISSING dataset oxford_pets" in report and "MISSING dataset imagenet_val" in report
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in report  # where it looked
    assert str(tmp_path / "data" / "oxford-iiit-pet") in report
    assert f"fetch them all: {paper.FETCH} --weights densenet121,googlenet" in report
    # the GAD paper reports Pets and CUB: the check of every chapter covers both, and one command fetches both
    assert "03_gad (dataset=cub_warbler_sparrow)" in report and "MISSING dataset cub_warbler_sparrow" in report
    fetch_all = next(line for line in report.splitlines() if line.startswith("fetch them all:"))
    assert fetch_all.endswith("--datasets cub_warbler_sparrow,oxford_pets")
    assert "licence-gated" in report and "GPU time, estimated" in report and "MB free" in report
    # chapter parameters change what is needed: CUB and VGG16 for chapter 03
    assert reproduce.main(["--chapter", "03_gad", "--profile", "paper", "--check", "-p", "dataset=cub_warbler_sparrow",
                           "-p", "arch=vgg16"]) == 1
    report = capsys.readouterr().out
    assert "MISSING weights vgg16" in report and "MISSING dataset cub_warbler_sparrow" in report
    assert "resnet18" not in report
    # a dataset with its own data_root gets its own fetch command (with that root), not a "by hand" step
    pets = tmp_path / "pets"
    assert reproduce.main(["--chapter", "03_gad", "--profile", "paper", "--check", "-p", f"data_root={pets}"]) == 1
    report = capsys.readouterr().out
    assert f"fetch into its data_root: oxford_pets: {paper.FETCH} --datasets oxford_pets --root {pets}" \
        in report
    assert "by hand" not in report
    # the quick profile reads only what ships in the packages
    assert reproduce.main(["--chapter", "all", "--profile", "quick", "--check"]) == 0
    assert reproduce.main(["--chapter", "nope", "--profile", "paper", "--check"]) == 2


def test_check_passes_with_the_fixtures_in_place_and_the_loaders_read_them(tmp_path, monkeypatch, capsys):
    made = rehearse.fixture_paths(tmp_path)
    _env(monkeypatch, made["torch"], made["data"])
    code = reproduce.main(["--chapter", "all", "--profile", "paper", "--check"])
    report = capsys.readouterr().out
    assert code == 0, report
    assert "MISSING" not in report and "everything the paper profile needs is present" in report
    # the layouts are the real ones: the package's own loaders read them
    pets = gu.load_binary_dataset("oxford_pets", "train", size=32)
    assert pets.class_names == ("cat", "dog") and pets.counts() == {"cat": 4, "dog": 4}
    birds = gu.load_binary_dataset("cub_warbler_sparrow", "test", size=32)
    assert birds.counts() == {"warbler": 4, "sparrow": 4} and "001.Black_footed_Albatross" not in birds.extra["species"]
    bundle = gu.load_model("squeezenet1_1", device="cpu", download=False)
    assert bundle.info["weights"].endswith("squeezenet1_1-b8a52dc0.pth")
    name, files = gu.data.datasets.one_class_files(made["imagenet_val"], 2)
    assert name == fixtures.IMAGENET_WNIDS[0] and len(files) == 2


def test_every_chapter_with_a_paper_branch_is_rehearsed():
    branches = rehearse.paper_chapters()
    assert set(branches) == set(reproduce.chapters())  # every chapter has a paper branch today
    assert rehearse.unrehearsed(branches) == []
    # and the rule can fail: a chapter with a paper branch but no rehearsal entry is reported
    assert rehearse.unrehearsed({**branches, "99_new": ["if profile == \"paper\":"]}) == ["99_new"]
    for chapter, params in rehearse.REHEARSAL.items():  # only sizes and declared parameters turn the scale down
        declared = reproduce.declared_values(reproduce.NOTEBOOK_DIR / f"{chapter}.ipynb")
        assert set(params) <= set(declared) | set(reproduce.chapter_scale(chapter)), chapter
    # a size whose paper value is the quick one is no paper branch; one that differs is
    assert "SIZES.n_random: paper=359" in branches["06_normlime"]
    assert not any(line.startswith("SIZES.num_samples") for line in branches["02_gradlime"])


def test_rehearsal_compares_what_a_chapter_read_with_what_check_lists():
    manifest = {"inputs": [{"kind": "weights", "name": "resnet18", "path": "x"},
                           {"kind": "dataset", "name": "oxford_pets", "path": "y"},
                           {"kind": "skipped", "name": "oxford_pets", "path": "y/images/Abyssinian_100.jpg"}]}
    assert rehearse._inputs_match(manifest, "03_gad", {"arch": "resnet18", "dataset": "oxford_pets"}) == []
    problems = rehearse._inputs_match(manifest, "03_gad", {"arch": "vgg16", "dataset": "oxford_pets"})
    assert problems == ["read but not listed by --check: weights resnet18",
                        "listed by --check but never read: weights vgg16"]
    # a run that read the unkind Pets fixture must have reported its truncated JPEG
    manifest["inputs"].pop()
    problems = rehearse._inputs_match(manifest, "03_gad", {"arch": "resnet18", "dataset": "oxford_pets"})
    assert problems == ["the Pets fixture's truncated JPEG was not reported as skipped (skipped: [])"]


def test_the_evaluation_chapter_at_paper_scale_needs_imagenet_or_says_how(tmp_path, monkeypatch):
    from gradlime_utils.experiments.ch04_evaluation import photo_sources

    monkeypatch.setenv("GRADLIME_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="data_root"):
        photo_sources("paper", ["chelsea"])
    fixtures.imagenet_val(tmp_path / "imagenet_val", per_class=3)
    assert len(photo_sources("paper", ["chelsea"], n_images=3)) == 3  # the default place, one class
    assert photo_sources("quick", ["chelsea"]) == ["chelsea"]


def test_gradient_batches_fit_the_memory_of_224_pixel_images(monkeypatch):
    from gradlime_utils.methods import attributions
    from gradlime_utils.methods.attributions import attribution_maps, images_per_batch

    assert images_per_batch(torch.zeros(1, 3, 224, 224)) == 8  # 512 photos x 50 IG steps would need 30-100 GB
    assert images_per_batch(torch.zeros(1, 1, 28, 28)) == 512  # the MNIST batches stay as they were
    assert images_per_batch(torch.zeros(1, 1, 28, 28), at_most=64) == 64
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    x = torch.rand(10, 3, 32, 32)
    monkeypatch.setitem(attributions.PIXEL_BUDGET, "cpu", 3 * 32 * 32)  # batches of 3, 3, 3 and 1 images
    assert images_per_batch(x) == 3
    batched = attribution_maps(model, x, 1, "integrated_gradients")
    single = torch.cat([attribution_maps(model, x[i:i + 1], 1, "integrated_gradients") for i in range(10)])
    assert torch.allclose(batched, single, atol=1e-6)


def test_needs_follow_the_chapters_parameters():
    needs = paper.chapter_needs("07_lime_heatmap_vs_gradcam", {})
    assert [n.name for n in needs] == ["googlenet", "squeezenet1_1", "photo_folder"] and needs[-1].optional
    assert not paper.chapter_needs("07_lime_heatmap_vs_gradcam", {"data_root": "/photos"})[-1].optional
    assert paper.chapter_needs("06_normlime", {}) == []
    assert json.dumps(paper.GPU_ESTIMATE) and set(paper.GPU_ESTIMATE) == set(reproduce.chapters())


def test_the_check_and_the_fetch_cli_agree_on_what_can_be_downloaded():
    """--check folds into 'fetch them all' exactly the datasets python -m gradlime_utils.runs.fetch downloads."""
    from gradlime_utils.runs import fetch
    from gradlime_utils.runs import paper
    assert set(paper.FETCHABLE) == set(fetch.DATASETS)


def test_two_runs_are_compared_file_by_file_with_clock_readings_aside(tmp_path):
    """`make rehearse DEVICE=cuda` runs each chapter twice; compare_runs lists what differs, timings aside."""
    import json

    a, b = tmp_path / "a", tmp_path / "b"
    for folder, seconds, value in ((a, 1.5, 0.25), (b, 9.0, 0.25)):
        (folder / "results").mkdir(parents=True)
        (folder / "results" / "r.json").write_text(json.dumps({"score": value, "seconds": seconds,
                                                                "rows": [{"x": 1, "wall_seconds": seconds}]}))
        (folder / "results" / "t.csv").write_text("a,b\n1,2\n")
        (folder / "manifest.json").write_text(json.dumps({"started": str(seconds)}))
    assert rehearse.compare_runs(a, b) == []
    (b / "results" / "r.json").write_text(json.dumps({"score": 0.26, "seconds": 9.0, "rows": [{"x": 1}]}))
    (b / "results" / "t.csv").write_text("a,b\n1,3\n")
    (b / "results" / "extra.png").write_bytes(b"x")
    assert rehearse.compare_runs(a, b) == ["results/extra.png: only in one run", "results/r.json", "results/t.csv"]
