"""The inference engines: ONNX Runtime matches PyTorch, follows weight changes, and the batch size is measured."""
import time
import numpy as np
import pytest
import torch

import gradlime_utils as gu
from gradlime_utils.data.engine import ENGINES, measure_batch_sizes, resolve_engine
from gradlime_utils.data.models import ModelBundle


@pytest.fixture(scope="module")
def photos():
    return np.stack([gu.load_image(n) for n in ("chelsea", "coffee", "astronaut", "rocket")])


def test_onnxruntime_matches_pytorch_on_photos_and_perturbed_images(lite0, photos):
    fast = gu.load_model("efficientnet_lite0", device="cpu", engine="onnxruntime")
    ref = gu.load_model("efficientnet_lite0", device="cpu", engine="torch")
    assert fast.engine_used == "onnxruntime" and ref.engine_used == "torch"
    rng = np.random.default_rng(3)  # LIME-like perturbations: random 28-px blocks of each photo blacked out
    keep = np.kron(rng.random((16, 8, 8)) > 0.5, np.ones((28, 28)))[..., None].astype(bool)
    perturbed = np.concatenate([photos, np.where(keep, np.repeat(photos, 4, axis=0), 0).astype(np.uint8)])
    p_fast, p_ref = fast.predict_proba(perturbed, batch_size=8), ref.predict_proba(perturbed, batch_size=8)
    assert np.abs(p_fast - p_ref).max() < 1e-4
    assert (p_fast.argmax(1) == p_ref.argmax(1)).all()


@pytest.mark.slow
def test_lime_and_gradlime_keep_their_top_superpixels_with_the_fast_engine(photos):
    from gradlime_utils.methods.gradcam import gradcam
    from gradlime_utils.methods.surrogate import explain_gradlime, explain_lime

    for photo in photos[:2]:
        tops = []
        for engine in ("torch", "onnxruntime"):
            bundle = gu.load_model("efficientnet_lite0", device="cpu", engine=engine)
            label = int(bundle.predict_proba(photo).argmax())
            nb = gu.sample_neighborhood(bundle, photo, num_samples=300, seed=0, progress=False)
            cam = gradcam(bundle, photo, label).heatmap
            tops.append([list(e.top_superpixels(5, positive_only=False)) for e in
                         (explain_lime(nb, label, 5), explain_gradlime(nb, label, cam, "feature", 5))])
        assert tops[0] == tops[1]


def tiny_bundle(**kwargs) -> ModelBundle:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 2))
    return ModelBundle(name="tiny", model=net, class_names=["a", "b"], input_size=8, cam_layers=[],
                       mean=(0.5,) * 3, std=(0.5,) * 3, device=torch.device("cpu"), **kwargs)


def test_the_onnx_graph_follows_weight_changes():
    bundle = tiny_bundle(engine="onnxruntime", batch_size=4)
    net = bundle.model
    images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    before = bundle.predict_logits(images)
    with torch.no_grad():
        net[-1].bias += 1.0  # trained in place after the first query
    after = bundle.predict_logits(images)
    np.testing.assert_allclose(after, before + 1.0, atol=1e-5)
    with torch.no_grad():
        reference = net(bundle.preprocess(images)).numpy()
    np.testing.assert_allclose(after, reference, atol=1e-5)


def test_engine_choice_and_gpu_rule():
    assert resolve_engine("auto", torch.device("cpu")) in ENGINES
    assert resolve_engine("onnxruntime", torch.device("cuda")) == "torch"  # gradients and GPUs stay in PyTorch
    with pytest.raises(ValueError, match="engine must be"):
        resolve_engine("tensorrt", torch.device("cpu"))


def test_batch_size_measurement_and_cache(lite0):
    calls = []
    table = measure_batch_sizes(lambda b: calls.append(len(b)), lambda b: np.zeros((b, 2)), candidates=(1, 4),
                                images=8, repeats=1)
    assert set(table) == {1, 4} and all(v >= 0 for v in table.values())
    assert calls.count(1) == 2 + 1 + 8 and calls.count(4) == 1 + 2  # speed probe, warm-up + images // b calls
    slow = []  # a model over 30 ms per image: 8 images once, batch sizes up to 8 only
    table = measure_batch_sizes(lambda b: (slow.append(len(b)), time.sleep(0.035)), lambda b: np.zeros((b, 2)),
                                candidates=(1, 4, 16), images=32, repeats=2)
    assert set(table) == {1, 4} and slow.count(1) == 2 + 1 + 8 and slow.count(4) == 1 + 2
    with pytest.raises(ValueError, match="candidates must be positive"):
        measure_batch_sizes(lambda b: None, lambda b: b, candidates=(0,))
    bundle = tiny_bundle()
    chosen = bundle.resolved_batch_size()
    assert chosen in bundle.batch_table and bundle.batch_table[chosen] == min(bundle.batch_table.values())
    again = tiny_bundle()
    assert again.resolved_batch_size() == chosen and again.batch_table == bundle.batch_table  # from the cache
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        bundle.predict_logits(np.zeros((2, 8, 8, 3), np.uint8), batch_size=0)
