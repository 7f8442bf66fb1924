from pathlib import Path

import numpy as np
import pytest
import torch

import gradlime_utils as gu


def test_check_profile_accepts_the_three_profiles():
    for profile in ("smoke", "quick", "paper"):
        assert gu.check_profile(profile) == profile


@pytest.mark.parametrize("bad", ["fast", "", "Quick", None])
def test_unknown_profile_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="profile must be one of"):
        gu.check_profile(bad)


def test_set_seed_makes_a_gpu_run_repeatable_and_full_precision():
    torch.backends.cudnn.allow_tf32 = True  # PyTorch's default
    gu.set_seed(3)
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32


def test_sizes_resolve_the_profile_and_the_overrides():
    sizes = gu.Sizes(n=gu.Size(1, 2, 3, "draws"), names=gu.Size(["a"], ["a", "b"], None))
    assert vars(sizes.resolve("smoke")) == {"n": 1, "names": ["a"]}
    assert vars(sizes.resolve("paper", {})) == {"n": 3, "names": None}
    with pytest.raises(ValueError, match="profile"):
        sizes.resolve("huge")
    # an override wins in every profile; None keeps the profile's value (0 is a value)
    assert sizes.resolve("paper", {"n": 7}).n == 7
    assert sizes.resolve("paper", {"n": None}).n == 3
    assert sizes.resolve("quick", {"n": 0}).n == 0
    with pytest.raises(ValueError, match=r"unknown name\(s\) \['m'\].*\['n', 'names'\]"):
        sizes.resolve("quick", {"m": 1})
    with pytest.raises(TypeError, match="sizes must be a dict"):
        sizes.resolve("quick", [("n", 1)])
    assert sizes.values_of("quick") == {"n": 2, "names": ["a", "b"]} and list(sizes) == ["n", "names"]
    assert sizes.table().splitlines()[0] == "n: 1 / 2 / 3  (draws)"


def test_every_chapter_reads_its_scale_from_its_sizes():
    """The parameters cell declares one ``sizes`` dict, the setup resolves it through the chapter's own module's
    ``SIZES``, and no chapter picks a value by profile in its own code (``by_profile`` is gone; ``profile ==``
    tests pick models and datasets for the paper, never a count)."""
    import json
    import re

    from gradlime_utils.experiments import CHAPTER_MODULES, chapter_sizes

    root = Path(__file__).resolve().parents[2]
    for chapter, module in CHAPTER_MODULES.items():
        cells = json.loads((root / "notebooks" / f"{chapter}.ipynb").read_text())["cells"]
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        params = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
        assert re.search(rf"^sizes = \{{\}}  # overrides of {module}\.SIZES", "".join(params["source"]), re.M), chapter
        resolved = [c for c in code if re.search(rf"^size = (?:{module}\.)?SIZES\.resolve\(profile, sizes\)$", c, re.M)]
        assert len(resolved) == 1, chapter
        assert not any("by_profile" in c or re.search(r'profile [!=]= "(smoke|quick)"', c) for c in code), chapter
        used = set(re.findall(r"\bsize\.(\w+)", "\n".join(code)))
        assert used == set(chapter_sizes(chapter)), f"{chapter}: used {sorted(used)}, SIZES {sorted(chapter_sizes(chapter))}"


def test_start_chapter_checks_seeds_and_makes_the_output_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = gu.start_chapter("smoke", 5, "outputs/chapter")
    assert out == Path("outputs/chapter") and (tmp_path / "outputs" / "chapter").is_dir()
    first = np.random.rand()
    assert gu.start_chapter("quick", 5, out) == out  # a second call: the folder is kept, the seed set again
    assert np.random.rand() == first
    with pytest.raises(ValueError, match="profile"):
        gu.start_chapter("huge", 5, tmp_path / "never")
    assert not (tmp_path / "never").exists()  # a bad profile fails before the folder is made


def test_resolve_device():
    assert gu.resolve_device("cpu") == torch.device("cpu")
    assert gu.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be one of"):
        gu.resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_an_error_not_a_silent_fallback():
    with pytest.raises(ValueError, match="cuda"):
        gu.resolve_device("cuda")


def test_set_seed_makes_numpy_and_torch_repeatable():
    gu.set_seed(7)
    a = (np.random.rand(3), torch.rand(3))
    gu.set_seed(7)
    b = (np.random.rand(3), torch.rand(3))
    np.testing.assert_array_equal(a[0], b[0])
    assert torch.equal(a[1], b[1])


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (2**32, ValueError), (2**40, ValueError),
                                        (1.5, TypeError), ("0", TypeError), (True, TypeError)])
def test_bad_seed(bad, error):
    """One seed rule: set_seed and check_seed agree (a wrong kind is a TypeError, a bad value a ValueError)."""
    from gradlime_utils.validation import check_seed

    with pytest.raises(error, match="seed must be"):
        gu.set_seed(bad)
    with pytest.raises(error, match="seed must be"):
        check_seed(bad)


def test_environment_report_names_versions_and_device():
    report = gu.environment_report("cpu")
    assert report["device"] == "cpu"
    assert report["torch"] == torch.__version__.split("+")[0]
    assert report["lime"] == "0.2.0.1"


def test_set_seed_turns_on_deterministic_algorithms_where_a_gpu_is_present(monkeypatch):
    """On a GPU every kernel must be deterministic for two runs to agree; on a CPU nothing changes. (Checked with
    torch's own switches; no GPU runs here.)"""
    import torch

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = torch.are_deterministic_algorithms_enabled()
    try:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        gu.set_seed(0)
        assert torch.are_deterministic_algorithms_enabled() == before
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        gu.set_seed(0)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        import os

        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(before)


def test_progress_bars_obey_tqdm_disable_even_when_asked_for(monkeypatch, capsys):
    """The book build sets TQDM_DISABLE; tqdm lets an explicit disable=False override it, which left progress
    bars on the published pages. runtime.progress_bar does not."""
    from gradlime_utils.runtime import progress_bar

    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress_bar(range(3), disable=False).disable
    monkeypatch.delenv("TQDM_DISABLE")
    bar = progress_bar(range(3), disable=False)
    assert not bar.disable
    bar.close()
    assert progress_bar(range(3), disable=True).disable
    progress_bar.write("a line")
    assert "a line" in capsys.readouterr().out
