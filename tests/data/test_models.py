import urllib.error

import numpy as np
import pytest
import torch
from torch import nn

import gradlime_utils as gu
from gradlime_utils.data import models as gm
def test_efficientnet_lite0_puts_a_cat_class_first_for_chelsea(lite0):
    proba = lite0.predict_proba(gu.load_image("chelsea")[None])
    assert proba.shape == (1, 1000)
    assert 281 <= int(proba.argmax()) <= 285, lite0.top_k(gu.load_image("chelsea"))
    assert lite0.class_names[int(proba.argmax())] in {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}


def test_efficientnet_lite0_recognises_the_espresso(lite0):
    assert lite0.top_k(gu.load_image("coffee"), k=1)[0][1] == "espresso"


def test_bundle_metadata(lite0):
    assert lite0.input_size == 224 and lite0.num_classes == 1000
    assert lite0.cam_layers and all(n in dict(lite0.model.named_modules()) for n in lite0.cam_layers)
    assert not lite0.model.training
    assert lite0.stand_in_for  # labelled as a stand-in


def test_predict_proba_is_batch_size_invariant_and_normalised(lite0):
    imgs = np.stack([gu.load_image(n) for n in ("chelsea", "coffee", "rocket")])
    p1 = lite0.predict_proba(imgs, batch_size=1)
    p3 = lite0.predict_proba(imgs, batch_size=3)
    np.testing.assert_allclose(p1, p3, atol=1e-5)
    np.testing.assert_allclose(p1.sum(1), 1.0, atol=1e-5)
    assert lite0.predict_proba(imgs[:0]).shape == (0, 1000)


def test_preprocess_matches_a_direct_normalisation(lite0):
    img = gu.load_image("chelsea")
    x = lite0.preprocess(img[None])
    ref = (torch.from_numpy(img).permute(2, 0, 1).float() / 255 - 0.5) / 0.5
    torch.testing.assert_close(x[0], ref)
    torch.testing.assert_close(lite0.preprocess(torch.from_numpy(img[None])), x)


@pytest.mark.parametrize("images, match", [
    (np.zeros((1, 224, 224, 3), dtype=np.float32), "expects uint8"),
    (np.zeros((1, 224, 224), dtype=np.uint8), "N×H×W×3"),
    (np.zeros((1, 100, 100, 3), dtype=np.uint8), "expects 224×224"),
])
def test_bad_batches_raise_clear_errors(lite0, images, match):
    with pytest.raises(ValueError, match=match):
        lite0.predict_proba(images)


def test_bad_batch_size(lite0):
    with pytest.raises(ValueError, match="batch_size"):
        lite0.predict_proba(gu.load_image("chelsea")[None], batch_size=-1)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'resnet50'"):
        gu.load_model("resnet50")


def test_unexpected_arguments_are_rejected():
    with pytest.raises(TypeError, match="unexpected arguments"):
        gu.load_model("efficientnet_lite0", digits=(1, 2))


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_resnet18_without_cached_weights_is_a_clear_error(empty_torch_home):
    with pytest.raises(RuntimeError, match="not in the torch cache.*weights_path"):
        gu.load_model("resnet18", download=False)
    with pytest.raises(RuntimeError, match="not in the torch cache"):
        gu.load_model("vgg16", download=False)


def test_failed_download_is_a_clear_error_never_random_weights(empty_torch_home, monkeypatch):
    from torchvision.models import ResNet18_Weights

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(type(ResNet18_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(RuntimeError, match="could not download resnet18.*download .*resnet18-f37072fd.pth"):
        gu.load_model("resnet18")


def test_resnet18_loads_weights_from_the_torch_cache(empty_torch_home):
    import torchvision

    from torchvision.models import ResNet18_Weights

    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None).eval()
    path = gm.torchvision_weights_path(ResNet18_Weights.IMAGENET1K_V1)
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    bundle = gu.load_model("resnet18", device="cpu", download=False)
    assert bundle.cam_layers == ["layer4"] and bundle.class_names[281] == "tabby"
    img = gu.load_image("chelsea")
    with torch.no_grad():
        expected = reference(bundle.preprocess(img[None]).contiguous()).softmax(1).numpy()
    np.testing.assert_allclose(bundle.predict_proba(img[None]), expected, atol=1e-5)


def test_densenet_loads_its_published_checkpoint_with_the_old_key_names(tmp_path):
    """torchvision's densenet121-a639ec97.pth names a dense layer's modules "norm.1", "conv.2" (and is saved in
    torch's legacy format); torchvision renames them in its own loader, and so must we. The rehearsal's fixtures
    are written in that published form (fixtures.torchvision_weights)."""
    import torchvision

    from gradlime_utils.runs.fixtures import torchvision_weights

    torch.manual_seed(0)
    reference = torchvision.models.densenet121(weights=None).eval()
    published = gm.current_to_published("densenet121", reference.state_dict())
    assert "features.denseblock1.denselayer1.norm.1.weight" in published
    assert "features.denseblock1.denselayer1.norm1.weight" not in published
    path = tmp_path / "densenet121-a639ec97.pth"
    torch.save(published, path, _use_new_zipfile_serialization=False)
    with pytest.raises(RuntimeError, match="Unexpected key"):  # what loading the file directly did
        torchvision.models.densenet121(weights=None).load_state_dict(torch.load(path, weights_only=True))
    bundle = gu.load_model("densenet121", device="cpu", weights_path=path)
    for key, value in reference.state_dict().items():
        assert torch.equal(bundle.model.state_dict()[key], value), key
    assert gm.published_to_current("resnet18", {"a": 1}) == {"a": 1}
    fixture = torchvision_weights(tmp_path / "torch", ["densenet121"])[0]
    assert "features.denseblock1.denselayer1.conv.2.weight" in torch.load(fixture, weights_only=True)


def test_weights_path_that_is_missing_or_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights_path"):
        gu.load_model("resnet18", weights_path=tmp_path / "none.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="could not read resnet18 weights"):
        gu.load_model("resnet18", weights_path=bad)


def test_mnist_cnn_trains_to_high_accuracy_and_uses_relu_modules(mnist_bundle):
    assert mnist_bundle.info["test_accuracy"] > 0.95
    assert mnist_bundle.class_names == ["digit 3", "digit 8"] and mnist_bundle.input_size == 28
    relus = [m for m in mnist_bundle.model.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 4  # captum's GuidedBackprop / Deconvolution need nn.ReLU modules
    test = gu.load_binary_dataset("mnist_3_vs_8", split="test")
    acc = (mnist_bundle.predict_proba(test.images()).argmax(1) == test.labels).mean()
    assert acc == pytest.approx(mnist_bundle.info["test_accuracy"])


@pytest.mark.slow
def test_mnist_cnn_is_cached_and_a_corrupt_cache_is_retrained(mnist_bundle):
    again = gu.load_model("mnist_cnn", device="cpu", progress=False)
    assert again.info["cached"] is True
    for a, b in zip(again.model.state_dict().values(), mnist_bundle.model.state_dict().values()):
        assert torch.equal(a, b)
    from pathlib import Path

    Path(again.info["path"]).write_bytes(b"truncated")
    retrained = gu.load_model("mnist_cnn", device="cpu", progress=False)
    assert retrained.info["cached"] is False
    assert retrained.info["test_accuracy"] == pytest.approx(mnist_bundle.info["test_accuracy"])


@pytest.mark.parametrize("arch", ["googlenet", "mobilenet_v2"])
def test_other_torchvision_models_load_their_checkpoint_format(arch, empty_torch_home):
    from gradlime_utils.data.models import _torchvision_spec

    builder, weights, layers = _torchvision_spec()[arch]
    torch.manual_seed(0)
    path = gm.torchvision_weights_path(weights)
    path.parent.mkdir(parents=True)
    torch.save(builder(weights=None).state_dict(), path)  # same keys as torchvision's ImageNet file
    bundle = gu.load_model(arch, device="cpu", download=False)
    assert bundle.cam_layers == layers and bundle.num_classes == 1000
    proba = bundle.predict_proba(gu.load_image("chelsea")[None])
    assert proba.shape == (1, 1000) and np.isclose(proba.sum(), 1, atol=1e-5)


def test_load_available_reports_what_cannot_be_had_instead_of_replacing_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    bundles, unavailable = gm.load_available(["efficientnet_lite0", "resnet18"], device="cpu", download=False)
    assert list(bundles) == ["efficientnet_lite0"] and list(unavailable) == ["resnet18"]
    assert "not in the torch cache" in unavailable["resnet18"]
    table = gm.describe_bundles(bundles, unavailable).splitlines()
    assert table[1].startswith("efficientnet_lite0") and "4,652,008" in table[1] and "_blocks.15" in table[1]
    assert table[2].startswith("resnet18") and "not available here" in table[2]


def test_save_figure_writes_png_and_pdf(tmp_path):
    import matplotlib.pyplot as plt

    from gradlime_utils.plotting import save_figure

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    save_figure(fig, tmp_path / "f.png")
    plt.close(fig)
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG" and (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"


def test_finish_figure_titles_lays_out_and_saves_only_when_asked(tmp_path):
    import matplotlib.pyplot as plt

    from gradlime_utils.plotting import finish_figure

    fig, ax = plt.subplots()
    assert finish_figure(fig) is fig and fig._suptitle is None and not list(tmp_path.iterdir())
    finish_figure(fig, "Figure 9", tmp_path / "g.png", dpi=30, fontsize=7)
    assert fig._suptitle.get_text() == "Figure 9" and fig._suptitle.get_fontsize() == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.pdf", "g.png"]
    plt.close(fig)
