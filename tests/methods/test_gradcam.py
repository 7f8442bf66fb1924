import numpy as np
import pytest
import torch
import torchvision

import gradlime_utils as gu
from gradlime_utils.data.models import IMAGENET_MEAN, IMAGENET_STD, ModelBundle


@pytest.fixture(scope="module")
def random_resnet():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    return ModelBundle(name="resnet18-random", model=model, class_names=[str(i) for i in range(1000)],
                       input_size=224, cam_layers=["layer4"], mean=IMAGENET_MEAN, std=IMAGENET_STD,
                       device=torch.device("cpu"))


def _predicted(bundle, image):
    # random weights: Grad-CAM of an arbitrary class is often all zero after the ReLU, the predicted one is not
    return int(bundle.predict_proba(image[None]).argmax())


def _manual_layer_cam(bundle, image, target, layer):
    store = {}
    module = dict(bundle.model.named_modules())[layer]
    handle = module.register_forward_hook(lambda m, i, o: store.__setitem__("act", o))
    x = bundle.preprocess(image[None]).requires_grad_(True)
    out = bundle.model(x)
    handle.remove()
    grad, = torch.autograd.grad(out[0, target], store["act"])
    weights = grad.mean(dim=(2, 3), keepdim=True)
    return torch.relu((weights * store["act"]).sum(1))[0].detach().numpy()


def test_layer_map_is_grad_cam_of_the_target_logit(random_resnet):
    image = gu.load_image("chelsea")
    target = _predicted(random_resnet, image)
    res = gu.gradcam(random_resnet, image, target=target)
    expected = _manual_layer_cam(random_resnet, image, target, "layer4")
    assert expected.max() > 0
    np.testing.assert_allclose(res.layer_maps["layer4"], expected, rtol=1e-4, atol=1e-6)
    assert res.heatmap.shape == (224, 224)
    assert res.heatmap.min() == pytest.approx(0, abs=1e-6) and res.heatmap.max() == pytest.approx(1, abs=1e-5)


def test_matches_the_grad_cam_package(random_resnet):
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    image = gu.load_image("coffee")
    target = _predicted(random_resnet, image)
    ours = gu.gradcam(random_resnet, image, target=target, layers=["layer3", "layer4"]).heatmap
    x = random_resnet.preprocess(image[None]).contiguous()
    with GradCAM(model=random_resnet.model, target_layers=[random_resnet.model.layer3,
                                                           random_resnet.model.layer4]) as cam:
        ref = cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0]
    # same algorithm; only the bilinear resize differs (cv2 vs torch), so compare closely but not exactly
    assert ours.std() > 0.05 and ref.std() > 0.05
    assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] > 0.99
    assert np.abs(ours - ref).mean() < 0.02


def test_fusion_of_layers_with_different_sizes(random_resnet):
    image = gu.load_image("rocket")
    target = _predicted(random_resnet, image)
    res = gu.gradcam(random_resnet, image, target=target, layers=["layer2", "layer4"])
    assert res.layer_maps["layer2"].shape == (28, 28) and res.layer_maps["layer4"].shape == (7, 7)
    singles = [gu.gradcam(random_resnet, image, target, layers=[name]).heatmap for name in ("layer2", "layer4")]
    assert not np.allclose(singles[0], singles[1], atol=0.05)
    expected = np.mean(singles, axis=0)
    expected = (expected - expected.min()) / (expected.max() - expected.min() + 1e-7)
    np.testing.assert_allclose(res.heatmap, expected, atol=1e-5)


def test_hooks_are_released(random_resnet):
    modules = list(random_resnet.model.modules())
    gu.gradcam(random_resnet, gu.load_image("chelsea"), 1, layers=["layer1", "layer4"])
    assert all(not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks for m in modules)


def test_works_on_efficientnet_lite0_and_points_at_the_cat(lite0):
    image = gu.load_image("chelsea")
    res = gu.gradcam(lite0, image, target=285)
    assert res.heatmap.shape == (224, 224) and res.layer_maps["_blocks.15"].shape == (7, 7)


def test_bad_inputs(random_resnet):
    image = gu.load_image("chelsea")
    with pytest.raises(ValueError, match="layer 'layer9' does not exist"):
        gu.gradcam(random_resnet, image, 1, layers=["layer9"])
    with pytest.raises(ValueError, match="target must be a class index"):
        gu.gradcam(random_resnet, image, 1000)
    with pytest.raises(ValueError, match="at least one layer"):
        gu.gradcam(random_resnet, image, 1, layers=[])
    with pytest.raises(ValueError, match="N×H×W×3"):
        gu.gradcam(random_resnet, image[..., 0], 1)
