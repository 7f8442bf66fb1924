import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Tests train and cache their own small models in a fresh folder, never in the user's cache.
# The folder (a few hundred MB of models and datasets) goes when the run ends: a hundred runs once
# filled a CI disk.
_CACHE = tempfile.mkdtemp(prefix="gradlime-test-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ["GRADLIME_CACHE"] = _CACHE
os.environ.setdefault("TQDM_DISABLE", "1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def lite0():
    import gradlime_utils as gu

    return gu.load_model("efficientnet_lite0", device="cpu")


@pytest.fixture(scope="session")
def mnist_bundle():
    import gradlime_utils as gu

    return gu.load_model("mnist_cnn", device="cpu", progress=False)


@pytest.fixture(scope="session")
def small_train():
    """80 training digits (3 vs 8) for the GAD support-model tests: (images, labels)."""
    import gradlime_utils as gu

    ds = gu.load_binary_dataset("mnist_3_vs_8", "train", max_per_class=40)
    return ds.images(), ds.labels
