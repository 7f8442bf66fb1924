"""Chapter 00 (setup and models): the scale of the chapter that loads every network and draws the MNIST pair. It
runs no experiment; its notebook reads only :data:`SIZES` from here."""
from __future__ import annotations

from gradlime_utils.runtime import Size, Sizes

#: The chapter's scale in each profile (smoke / quick / paper); the notebook's ``sizes`` parameter overrides by name.
SIZES = Sizes(
    imagenet_models=Size(["efficientnet_lite0"], ["efficientnet_lite0", "resnet18", "vgg16"],
                         ["efficientnet_lite0", "resnet18", "vgg16"],
                         "ImageNet networks listed (quick uses ResNet18 and VGG16 only if their weights are cached)"),
    n_show=Size(4, 8, 8, "MNIST digits drawn per class"),
)
