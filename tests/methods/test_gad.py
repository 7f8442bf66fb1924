import numpy as np
import pytest
import torch
from torch import nn

import gradlime_utils as gu
from gradlime_utils.methods.attributions import attribution_maps, check_relu_modules
from gradlime_utils.methods.gad import (check_alpha_schedule, combine_maps, distanced_targets, gad_map,
                                        train_support_models)
from gradlime_utils.metrics.hull import (convex_hull_mask, hull_points, relative_complexity, relative_sensitivity,
                                         supplementary_mask)


def test_distanced_targets_by_hand():
    logits = np.array([[3.0, 1.0], [0.5, 2.0], [-1.0, -2.0]])
    labels = np.array([0, 1, 0])
    t = distanced_targets(logits, labels, alpha=2)
    np.testing.assert_array_equal(t, [[3.0, -1.0], [-1.5, 2.0], [-1.0, -4.0]])
    np.testing.assert_array_equal(distanced_targets(logits, labels, 0), logits)
    assert logits[0, 1] == 1.0  # input untouched


@pytest.mark.parametrize("kwargs, match", [
    ({"logits": np.zeros((2, 3)), "labels": [0, 1], "alpha": 1}, "N×2"),
    ({"logits": np.zeros((2, 2)), "labels": [0], "alpha": 1}, "labels must have shape"),
    ({"logits": np.zeros((2, 2)), "labels": [0, 2], "alpha": 1}, "0 or 1"),
    ({"logits": np.zeros((2, 2)), "labels": [0, 1], "alpha": -1}, "non-negative"),
])
def test_distanced_targets_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        distanced_targets(**kwargs)


@pytest.mark.parametrize("alphas, match", [((2, 2, 4), "strictly increasing"), ((4, 2), "strictly increasing"),
                                           ((-2, 4), "positive"), ((0, 2), "positive"), ((), "empty")])
def test_bad_alpha_schedules(alphas, match):
    with pytest.raises(ValueError, match=match):
        check_alpha_schedule(alphas)


def test_convex_hull_of_known_point_sets():
    att = np.zeros((10, 10))
    for r, c in [(2, 2), (2, 7), (7, 2), (7, 7)]:
        att[r, c] = 1.0
    hull = convex_hull_mask(att)
    assert hull.defined and hull.area == 36 == hull.mask.sum()  # the filled 6x6 square, boundary included
    assert hull.mask[2:8, 2:8].all() and not hull.mask[1].any()
    tri = np.zeros((10, 10))
    tri[0, 0] = tri[0, 8] = tri[8, 0] = 1.0
    t = convex_hull_mask(tri)
    assert t.defined and t.mask[0, 0] and t.mask[4, 4] and not t.mask[8, 8]
    assert t.area == t.mask.sum()
    line = np.zeros((10, 10))
    line[3, 1:9] = 1.0
    assert not convex_hull_mask(line).defined and convex_hull_mask(line).area == 0
    assert not convex_hull_mask(np.zeros((5, 5))).defined


def test_hull_point_rules():
    att = np.arange(1, 11, dtype=float).reshape(2, 5)  # 10 non-zero values 1..10
    assert hull_points(att, keep=0.5).sum() == 5  # top half: >= the median 5.5
    att[0, 0] = 0  # zeros never count
    assert hull_points(att, keep=1.0).sum() == 9
    assert hull_points(att, keep=0.5, rule="fraction_of_max").sum() == 5  # > 5: 6..10
    for bad in (0, 1.5, -0.1):
        with pytest.raises(ValueError, match="keep must be in"):
            hull_points(att, keep=bad)
    with pytest.raises(ValueError, match="rule must be"):
        hull_points(att, rule="median")
    with pytest.raises(ValueError, match="2-D"):
        hull_points(np.zeros((2, 2, 2)))


def test_rc_by_hand():
    a = np.zeros((10, 10), bool); a[:4, :4] = True   # 16 px
    b = np.zeros((10, 10), bool); b[:8, :4] = True   # 32 px
    assert relative_complexity(a, b) == 0.5 and relative_complexity(b, a) == 2.0
    assert np.isnan(relative_complexity(np.zeros((10, 10), bool), b))
    np.testing.assert_array_equal(supplementary_mask(b, a), b & ~a)
    assert supplementary_mask(b, a).sum() == 16


class Linear2(nn.Module):
    """logit_c = sum of the image's normalised pixels times weight c: RS is computable by hand."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([1.0, -2.0]))

    def forward(self, x):
        return x.sum(dim=(1, 2, 3))[:, None] * self.w[None, :]


def test_rs_by_hand():
    from gradlime_utils.data.models import ModelBundle

    bundle = ModelBundle(name="toy", model=Linear2(), class_names=["a", "b"], input_size=4, cam_layers=[],
                         mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), device=torch.device("cpu"))
    img = np.full((4, 4, 3), 255, np.uint8)  # every pixel contributes 3 (three channels of 1.0)
    mask = np.zeros((4, 4), bool); mask[:2, :3] = True  # 6 pixels occluded to black: logit drops 18 * w
    rs = relative_sensitivity(bundle, img, mask, 0)
    assert rs[0] == pytest.approx(18 * 1.0 / 6)
    assert relative_sensitivity(bundle, img, mask, 1)[0] == pytest.approx(18 * 2.0 / 6)
    assert np.isnan(relative_sensitivity(bundle, img, np.zeros((4, 4), bool), 0)[0])
    with pytest.raises(ValueError, match="masks must have shape"):
        relative_sensitivity(bundle, img, np.zeros((3, 3), bool), 0)
    with pytest.raises(ValueError, match="targets must be class indices"):
        relative_sensitivity(bundle, img, mask, 2)


def test_combine_rules():
    orig = np.zeros((1, 4, 4)); orig[0, 0, :] = [4, 3, 2, 1]
    support = np.zeros((1, 4, 4)); support[0, 0, :] = [1, 2, 2, 0]
    per_model = np.stack([orig, support])  # models × N × H × W
    gmin = combine_maps(per_model, "min")
    np.testing.assert_allclose(gmin[0, 0], [0.5, 0.75, 0.5, 0.0])  # min(orig/4, support/2)
    assert gmin[0, 1:].sum() == 0
    inter = combine_maps(per_model, "intersection", keep=0.5)
    # top half of non-zero: orig {4, 3}; support {2, 2} (>= median 2): agree on column 1 only
    np.testing.assert_array_equal(inter[0, 0], [0, 3, 0, 0])
    with pytest.raises(ValueError, match="combine must be"):
        combine_maps(per_model, "max")
    with pytest.raises(ValueError, match="keep must be in"):
        combine_maps(per_model, "intersection", keep=0)


class FunctionalReluNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 28 * 28, 2)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


class HalfFunctionalNet(FunctionalReluNet):
    def __init__(self):
        super().__init__()
        self.unused = nn.ReLU()  # a ReLU module that forward never calls


def test_guided_backprop_and_deconvolution_refuse_functional_relus(mnist_bundle):
    x = mnist_bundle.preprocess(gu.load_binary_dataset(split="test").images([0, 1]))
    for method in ("guided_backprop", "deconvolution"):
        with pytest.raises(ValueError, match="needs nn.ReLU modules"):
            attribution_maps(FunctionalReluNet(), x, [0, 1], method)
        with pytest.raises(ValueError, match="plain gradient"):
            attribution_maps(HalfFunctionalNet(), x, [0, 1], method)
        maps = attribution_maps(mnist_bundle.model, x, [0, 1], method)  # real nn.ReLU modules: allowed
        assert maps.shape == (2, 28, 28) and maps.sum() > 0
    check_relu_modules(FunctionalReluNet(), "saliency")  # other methods do not need ReLU modules
    with pytest.raises(ValueError, match="needs nn.ReLU modules"):
        check_relu_modules(gu.load_model("efficientnet_lite0").model, "guided_backprop")  # ReLU6 only


def test_support_models_distance_the_logits_and_resume(mnist_bundle, small_train, monkeypatch):
    import gradlime_utils.methods.gad as gad

    images, labels = small_train
    kwargs = dict(alphas=(2, 4), epochs=3, lr=1e-3, dataset_name="resume-test", progress=False)
    calls = []
    real_save = gad.atomic_torch_save

    def crash_on_second(obj, path):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated interruption while saving alpha 4")
        return real_save(obj, path)

    monkeypatch.setattr(gad, "atomic_torch_save", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        train_support_models(mnist_bundle, images, labels, **kwargs)
    monkeypatch.setattr(gad, "atomic_torch_save", real_save)
    support = train_support_models(mnist_bundle, images, labels, **kwargs)
    assert [r.loaded_from_cache for r in support.reports] == [True, False]  # resumed after alpha 2
    assert support.alphas == [0.0, 2.0, 4.0] and support.models[0.0] is mnist_bundle.model
    for r in support.reports:
        assert r.mse_before == pytest.approx(r.alpha ** 2 / 2)  # only the other-class logit moved, by alpha
        assert r.mse_after < r.mse_before and r.distancing > 0
    again = train_support_models(mnist_bundle, images, labels, **kwargs)
    assert all(r.loaded_from_cache for r in again.reports)
    for a in (2.0, 4.0):
        for p, q in zip(again.models[a].parameters(), support.models[a].parameters()):
            assert torch.equal(p, q)


def test_corrupt_checkpoint_is_retrained_not_loaded(mnist_bundle, small_train, tmp_path):
    from gradlime_utils.cache import cache_dir

    images, labels = small_train
    kwargs = dict(alphas=(2,), epochs=2, lr=1e-3, dataset_name="corrupt-test", progress=False)
    first = train_support_models(mnist_bundle, images, labels, **kwargs)
    path, = [p for p in cache_dir("gad_support").glob("*corrupt-test*")]
    path.write_bytes(path.read_bytes()[:100])  # truncated mid-write
    second = train_support_models(mnist_bundle, images, labels, **kwargs)
    assert second.reports[0].loaded_from_cache is False
    for p, q in zip(first.models[2.0].parameters(), second.models[2.0].parameters()):
        assert torch.equal(p, q)  # same seed, same result


def test_gad_map_end_to_end_and_bad_inputs(mnist_bundle, small_train):
    images, labels = small_train
    support = train_support_models(mnist_bundle, images, labels, alphas=(2,), epochs=1, lr=1e-3,
                                   dataset_name="e2e-test", progress=False)
    maps = gad_map(support, images[:3], labels[:3], "saliency")
    assert maps.per_model.shape == (2, 3, 28, 28) and maps.gad.shape == (3, 28, 28)
    normalised_original = maps.per_model[0] / maps.per_model[0].max(axis=(1, 2), keepdims=True)
    assert maps.gad.max() <= 1 and (maps.gad <= normalised_original * (1 + 1e-6)).all()  # min <= each map
    with pytest.raises(ValueError, match="target must be 0 or 1"):
        gad_map(support, images[:2], 2, "saliency")
    with pytest.raises(ValueError, match="method must be one of"):
        gad_map(support, images[:2], 0, "lrp")
    with pytest.raises(ValueError, match="combine must be"):
        gad_map(support, images[:2], 0, "saliency", combine="mean")
    with pytest.raises(ValueError, match="keep must be in"):
        gad_map(support, images[:2], 0, "saliency", combine="intersection", keep=2)
    with pytest.raises(ValueError, match="expects 28×28"):
        gad_map(support, gu.load_image("chelsea", size=32), 0, "saliency")
    with pytest.raises(ValueError, match="images but"):
        train_support_models(mnist_bundle, images, labels[:5], alphas=(2,), progress=False)


def test_paper_profile_classifier_fine_tunes_a_two_way_resnet18(tmp_path, monkeypatch):
    """The paper path on a fixture in ImageFolder layout, with torchvision-format ResNet18 weights in the cache."""
    import torchvision
    from PIL import Image
    from torchvision.models import ResNet18_Weights

    from gradlime_utils.methods.gad import train_binary_classifier
    from gradlime_utils.data.models import torchvision_weights_path

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = torchvision_weights_path(ResNet18_Weights.IMAGENET1K_V1)
    weights.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 6)):
        for cls, channel in (("cat", 0), ("dog", 2)):
            for i in range(n):
                arr = rng.integers(0, 60, (48, 48, 3), dtype=np.uint8)
                arr[..., channel] = 230  # red cats, blue dogs: learnable in a few steps
                (tmp_path / "pets" / split / cls).mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(tmp_path / "pets" / split / cls / f"{i}.png")
    train = gu.load_binary_dataset("image_folder", "train", root=tmp_path / "pets", size=32)
    test = gu.load_binary_dataset("image_folder", "test", root=tmp_path / "pets", size=32)
    bundle = train_binary_classifier("resnet18", train, test, epochs=4, lr=1e-3, batch_size=8, device="cpu",
                                     download=False, progress=False)
    assert bundle.class_names == ["cat", "dog"] and bundle.num_classes == 2 and bundle.cam_layers == ["layer4"]
    assert bundle.info["cached"] is False and bundle.info["test_accuracy"] >= 0.9
    again = train_binary_classifier("resnet18", train, test, epochs=4, lr=1e-3, batch_size=8, device="cpu",
                                    download=False, progress=False)
    assert again.info["cached"] is True and again.info["test_accuracy"] == bundle.info["test_accuracy"]
    changed = Image.open(train.paths[0]).convert("RGB")  # one pixel of one training file: a new cache entry
    changed.putpixel((0, 0), (255, 255, 255))
    changed.save(train.paths[0])
    retrained = train_binary_classifier("resnet18", train, test, epochs=1, lr=1e-3, batch_size=8, device="cpu",
                                        download=False, progress=False)
    assert retrained.info["cached"] is False
    support = train_support_models(bundle, train.images(), train.labels, alphas=(2,), epochs=1, lr=1e-4,
                                   dataset_name="pets-fixture", progress=False)
    maps = gad_map(support, test.images([0, 1]), [0, 0], "guided_backprop")  # ResNet18 uses nn.ReLU modules
    assert maps.gad.shape == (2, 32, 32)
    with pytest.raises(ValueError, match="arch must be"):
        train_binary_classifier("alexnet", train, test, download=False, device="cpu")


def test_the_attribution_registry_names_each_method_once():
    from captum.attr._core.guided_backprop_deconvnet import ModifiedReluGradientAttribution

    from gradlime_utils.methods.attributions import ATTRIBUTION_METHODS, METHODS, SHORT_NAMES, _captum

    assert tuple(METHODS) == ATTRIBUTION_METHODS and all(METHODS[i].id == i for i in METHODS)
    assert [SHORT_NAMES[i] for i in ATTRIBUTION_METHODS] == ["S", "D", "GxI", "GB", "IG"]  # GAD's table columns
    assert len({m.display for m in METHODS.values()}) == len(METHODS)
    assert METHODS["integrated_gradients"].label("GAD") == "integrated gradients (GAD)"
    for i, m in METHODS.items():  # the flag says what captum really does: rewrite nn.ReLU modules
        cls = _captum(i)[0]
        assert m.rewrites_relu == (cls is not None and issubclass(cls, ModifiedReluGradientAttribution))


def test_the_gad_figures_draw_the_maps_and_logits_they_are_given(tmp_path):
    """Figures 1, 4, 5 and 6 of the GAD paper as package functions: what each panel shows is what was passed."""
    import matplotlib
    import matplotlib.pyplot as plt

    from gradlime_utils.experiments import ch03_gad as ge
    from gradlime_utils.methods.gad import GadMaps
    from gradlime_utils.metrics.hull import convex_hull_mask

    matplotlib.use("Agg")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (3, 12, 12, 3), dtype=np.uint8)
    maps = {m: GadMaps(m, "min", [0, 2], rng.random((2, 3, 12, 12)), rng.random((3, 12, 12)))
            for m in ("saliency", "guided_backprop")}
    fig = ge.plot_methods(maps, [0, 1, 1], ["cat", "dog"], "Figure 5", tmp_path / "D-5.png")
    assert fig.axes[0].get_ylabel() == "S orig" and fig.axes[3 * 3].get_ylabel() == "GB GAD"
    np.testing.assert_array_equal(fig.axes[3].images[0].get_array(), maps["saliency"].gad[0])
    assert [ax.get_xlabel() for ax in fig.axes[-3:]] == ["pred: cat", "pred: dog", "pred: dog"]
    assert (tmp_path / "D-5.png").is_file() and (tmp_path / "D-5.pdf").is_file()

    fig = ge.plot_hull_grid(images, maps, [1, 0, 1], ["cat", "dog"], {"top_fraction": 0.5}, "Figure 6")
    assert [ax.get_title() for ax in fig.axes[:3]] == ["dog", "cat", "dog"] and len(fig.axes) == 6
    assert fig.axes[3].get_ylabel() == "GB" and fig.axes[0].collections  # the hull contours were drawn

    hull = convex_hull_mask(maps["saliency"].gad[0], keep=0.1, rule="fraction_of_max")
    fig = ge.plot_hull(images[0], maps["saliency"].gad[0], hull, "GAD-S", "Figure 4")
    assert fig.axes[0].get_title() == "GAD-S map" and f"{hull.area} px" in fig.axes[1].get_title()

    class TwoModels:  # the one method plot_distancing asks of SupportModels
        alphas = [0, 4]

        def logits(self, alpha, inputs):
            return np.asarray(inputs) * (1 + alpha)

    inputs, labels = rng.normal(size=(6, 2)), np.array([0, 1, 0, 1, 0, 1])
    fig = ge.plot_distancing(TwoModels(), inputs, labels, ["cat", "dog"], "Figure 1", tmp_path / "D-1.png")
    np.testing.assert_allclose(fig.axes[1].collections[1].get_offsets(), inputs[labels == 1] * 5)
    assert fig.axes[1].get_title() == "support α = 4" and fig.axes[0].get_ylabel() == "logit 'dog'"
    plt.close("all")
