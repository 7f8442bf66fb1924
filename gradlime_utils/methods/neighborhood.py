"""LIME's perturbation neighbourhood of one image, sampled once and shared by every surrogate.

Built from the ``lime`` package's own pieces (its segmentation wrapper, ``LimeImageExplainer.data_labels``
and its kernel), so for the same seed, segmentation, hide colour and N the neighbourhood is exactly the one
``LimeImageExplainer.explain_instance`` would draw. Sampling once and fitting LIME and GradLIME on the same
Z', Y and weights makes every comparison in the book paired.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace

import numpy as np
import skimage.segmentation
import sklearn.metrics
import torch
from sklearn.utils import check_random_state

from gradlime_utils.data.images import hiding_image, render_masks
from gradlime_utils.data.models import ModelBundle
from gradlime_utils.runtime import progress_bar as tqdm
from gradlime_utils.validation import (check_choice, check_hide_color, check_int, check_rgb_image, check_seed,
                                       check_segments)

SEGMENTATIONS = ("quickshift", "slic", "felzenszwalb", "grid")
KERNEL_WIDTH = 0.25  # lime's default for images

# lime's defaults for quickshift; reasonable defaults (about 50 superpixels at 224 px) for the others.
SEGMENTATION_DEFAULTS = {
    "quickshift": {"kernel_size": 4, "max_dist": 200, "ratio": 0.2},
    "slic": {"n_segments": 50, "compactness": 10, "sigma": 1},
    "felzenszwalb": {"scale": 200, "sigma": 0.8, "min_size": 200},
    "grid": {"cell_size": 32},
}


def grid_segments(shape: tuple[int, int], cell_size: int) -> np.ndarray:
    """Square cells of ``cell_size`` pixels, labelled 0..M-1 row by row."""
    cell_size = check_int("cell_size", cell_size, low=1)
    h, w = shape
    rows, cols = np.arange(h) // cell_size, np.arange(w) // cell_size
    return rows[:, None] * (cols.max() + 1) + cols[None, :]


def segment_image(image: np.ndarray, segmentation: str = "quickshift", seed: int = 0, **params) -> np.ndarray:
    """Superpixels of ``image`` as an H×W int array with labels 0..M-1.

    ``quickshift``, ``slic`` and ``felzenszwalb`` go through lime's ``SegmentationAlgorithm`` wrapper
    (quickshift with lime's defaults and ``random_seed=seed``, as ``explain_instance`` does);
    ``grid`` is a fixed grid of square cells (``cell_size``), the same features for every image.
    """
    segmentation = check_choice("segmentation", segmentation, SEGMENTATIONS)
    options = {**SEGMENTATION_DEFAULTS[segmentation], **params}
    if segmentation != "grid":
        # lime's wrapper silently drops keywords the algorithm does not take (a typo would be ignored)
        accepted = set(inspect.signature(getattr(skimage.segmentation, segmentation)).parameters) | {"random_seed"}
        unknown = sorted(set(params) - accepted)
        if unknown:
            raise ValueError(f"{segmentation} segmentation does not take {unknown}; it takes "
                             f"{sorted(accepted - {'image'})}")
    if segmentation == "grid":
        unknown = set(options) - {"cell_size"}
        if unknown:
            raise ValueError(f"grid segmentation takes only cell_size, got {sorted(unknown)}")
        return grid_segments(image.shape[:2], options["cell_size"])
    from lime.wrappers.scikit_image import SegmentationAlgorithm  # lazy: heavy import

    if segmentation == "quickshift":
        options.setdefault("random_seed", seed)
    try:
        segments = SegmentationAlgorithm(segmentation, **options)(image)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{segmentation} segmentation failed with {options}: {exc}") from exc
    # lime indexes the columns of Z' by superpixel label, so labels must be 0..M-1
    _, segments = np.unique(segments, return_inverse=True)
    return segments.reshape(image.shape[:2])


@dataclass
class Neighborhood:
    """Z' (``data``), Y (``predictions``), distances and kernel weights around one image."""

    image: np.ndarray
    segments: np.ndarray
    fudged_image: np.ndarray
    data: np.ndarray
    predictions: np.ndarray
    distances: np.ndarray
    kernel_weights: np.ndarray
    segmentation: str
    seed: int
    hide_color: object
    model_name: str
    params: dict = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return self.data.shape[0]

    @property
    def num_superpixels(self) -> int:
        return self.data.shape[1]

    @property
    def top_label(self) -> int:
        """The model's predicted class on the unperturbed image (row 0)."""
        return int(np.argmax(self.predictions[0]))

    def head(self, n: int) -> "Neighborhood":
        """The first ``n`` samples: rows of Z' are i.i.d., so this is a valid neighbourhood of size ``n``."""
        if not 2 <= n <= self.num_samples:
            raise ValueError(f"n must be in [2, {self.num_samples}], got {n}")
        return replace(self, data=self.data[:n], predictions=self.predictions[:n], distances=self.distances[:n],
                       kernel_weights=self.kernel_weights[:n])

    def perturbed_image(self, row: int) -> np.ndarray:
        """h(z) for row ``row`` of Z': superpixels with z_j = 0 replaced by the hiding image."""
        return render_masks(self.image, self.segments, self.data[row:row + 1], self.fudged_image)[0]


def sample_neighborhood(bundle: ModelBundle, image: np.ndarray, num_samples: int = 1000, seed: int = 0,
                        segmentation: str = "quickshift", hide_color=0, batch_size: int | None = None,
                        segments: np.ndarray | None = None, progress: bool = True,
                        **segmentation_params) -> Neighborhood:
    """Sample LIME's neighbourhood of ``image`` once and query ``bundle`` on it.

    Parameters
    ----------
    num_samples:
        N, the number of perturbed images (row 0 is the image itself).
    seed:
        seeds Z' (as ``LimeImageExplainer(random_state=seed)``) and quickshift (``random_seed=seed``).
    segmentation:
        ``"quickshift"`` (lime's default), ``"slic"``, ``"felzenszwalb"`` or ``"grid"``; keyword
        arguments override the algorithm's parameters. ``segments=`` supplies a ready segmentation.
    hide_color:
        colour of switched-off superpixels (0 = black, as GradLIME); ``None`` = each superpixel's mean.
    batch_size:
        model batch size; ``None`` uses the bundle's device-dependent default (small on a CPU, where
        per-image time is lowest at batch 8-16, large on a GPU).
    progress:
        show a progress bar over the model queries.
    """
    from lime.lime_image import LimeImageExplainer  # lazy: heavy import

    num_samples = check_int("num_samples", num_samples, low=2)
    image = check_rgb_image(image)
    bundle.check_images(image[None])
    seed = check_seed(seed)
    hide_color = check_hide_color(hide_color)
    if batch_size is not None:
        check_int("batch_size", batch_size, 1)
    if segments is None:
        segments = segment_image(image, segmentation, seed, **segmentation_params)
    else:
        segments = check_segments(segments, image.shape[:2])
    fudged = hiding_image(image, segments, hide_color)
    explainer = LimeImageExplainer(kernel_width=KERNEL_WIDTH, random_state=seed)
    # Z' drawn exactly as LimeImageExplainer.data_labels draws it (same RNG, same call, row 0 all ones).
    # The perturbed images are then rendered a whole batch at a time: data_labels builds each one in a
    # Python loop over switched-off superpixels, which measured 40% on top of the model's own time (bench/).
    # tests/methods/test_lime_gradlime.py checks that Z' and Y equal data_labels' output bit for bit.
    n_features = int(np.unique(segments).shape[0])
    data = check_random_state(seed).randint(0, 2, num_samples * n_features).reshape((num_samples, n_features))
    data[0, :] = 1
    batch_size = batch_size or bundle.resolved_batch_size()
    switched_on = torch.as_tensor(data.astype(bool))  # indexing with a bool array moves 8x fewer bytes than int64
    # h(z) is rendered directly in the model's input space: normalisation acts pixel by pixel, so choosing each
    # pixel from the normalised image or the normalised hiding image equals normalising the rendered uint8
    # image (bit for bit), and saves a uint8 -> float pass over every perturbed image.
    with torch.inference_mode():
        x_on, x_off = bundle.preprocess(image[None]).cpu(), bundle.preprocess(fudged[None]).cpu()
    seg = torch.as_tensor(segments.astype(np.int64))
    predictions = []
    for start in tqdm(range(0, num_samples, batch_size), desc=f"{bundle.name}: {num_samples} perturbed images",
                      disable=not progress):
        with torch.inference_mode():
            on = switched_on[start:start + batch_size][:, seg].unsqueeze(1)
            x = torch.where(on, x_on, x_off)
        predictions.append(bundle.forward_inputs(x).softmax(dim=1).numpy())
    predictions = np.concatenate(predictions)
    distances = sklearn.metrics.pairwise_distances(data, data[0].reshape(1, -1), metric="cosine").ravel()
    return Neighborhood(image=image, segments=segments, fudged_image=fudged, data=data, predictions=predictions,
                        distances=distances, kernel_weights=explainer.base.kernel_fn(distances),
                        segmentation=segmentation, seed=seed, hide_color=hide_color, model_name=bundle.name,
                        params=dict(segmentation_params))
