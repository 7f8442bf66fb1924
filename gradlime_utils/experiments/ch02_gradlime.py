"""GradLIME's comparisons with LIME (Figures G-2 to G-4 of the GradLIME paper): the experiment loops and their
figure grid, so that chapter 02 only tells the story.

Every comparison fits LIME and GradLIME (Eq. 9) on one shared neighbourhood per black box and photo, so the two
explanations differ only by the Grad-CAM prior.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from gradlime_utils.data.models import ModelBundle, load_model
from gradlime_utils.methods.gradcam import gradcam
from gradlime_utils.methods.neighborhood import Neighborhood, sample_neighborhood
from gradlime_utils.methods.surrogate import SurrogateExplanation, explain_gradlime, explain_lime
from gradlime_utils.plotting import (CMAPS, finish_figure, save_figure, show_activation, show_explanation, show_heatmap,
                                     show_segments)
from gradlime_utils.runtime import Size, Sizes

#: The chapter's scale in each profile (smoke / quick / paper); the notebook's ``sizes`` parameter overrides by name.
SIZES = Sizes(num_samples=Size(40, 1000, 1000, "LIME samples per explanation"))


@dataclass
class Comparison:
    """One row of a LIME-vs-GradLIME figure: the photo, LIME and GradLIME for one class, and the Grad-CAM layer map
    the prior came from (``activation``, drawn when given)."""

    image: np.ndarray
    title: str
    label: int
    lime: SurrogateExplanation
    gradlime: SurrogateExplanation
    activation: np.ndarray | None = None
    activation_title: str = "Activation"


def compare_black_boxes(names: Sequence[str], image: np.ndarray, num_samples: int, seed: int = 0,
                        device: str = "auto", reuse: Mapping[str, tuple[ModelBundle, Neighborhood]] | None = None
                        ) -> list[Comparison]:
    """G-2: LIME and GradLIME of each black box's top class on ``image`` (the default Grad-CAM layer of each).
    ``reuse`` maps a model name to a bundle and neighbourhood already sampled, which are used as they are."""
    reuse = dict(reuse or {})
    rows = []
    for name in names:
        bundle, hood = reuse.get(name) or (None, None)
        if bundle is None:
            bundle = load_model(name, device=device)
            hood = sample_neighborhood(bundle, image, num_samples=num_samples, seed=seed)
        c = hood.top_label
        cam = gradcam(bundle, image, c)
        rows.append(Comparison(image, f"{name}: {bundle.class_names[c]}", c, explain_lime(hood, c),
                               explain_gradlime(hood, c, cam.heatmap), cam.layer_maps[bundle.cam_layers[0]]))
    return rows


def compare_layers(hood: Neighborhood, label: int, cams: Mapping[str, object]) -> list[Comparison]:
    """G-3: GradLIME with the Grad-CAM of each layer (``cams``: layer -> :class:`GradCamResult`) beside LIME."""
    lime = explain_lime(hood, label)
    image = hood.image
    rows = []
    for layer, cam in cams.items():
        raw = cam.layer_maps[layer]
        rows.append(Comparison(image, f"Original - {layer}", label, lime, explain_gradlime(hood, label, cam.heatmap),
                               raw, f"Activation {raw.shape[0]}×{raw.shape[1]}"))
    return rows


def compare_images(bundle: ModelBundle, hoods: Mapping[str, Neighborhood]) -> list[Comparison]:
    """G-4: LIME and GradLIME of each photo's top class (``hoods``: photo name -> its neighbourhood)."""
    rows = []
    for name, hood in hoods.items():
        c = hood.top_label
        cam = gradcam(bundle, hood.image, c).heatmap
        rows.append(Comparison(hood.image, f"{bundle.name}: {bundle.class_names[c]}", c, explain_lime(hood, c),
                               explain_gradlime(hood, c, cam)))
    return rows


def plot_comparison(rows: Sequence[Comparison], title: str = "", path=None, curves: bool = False,
                    weights: bool = False):
    """The GradLIME paper's figure grid: per row the photo, the layer's activation (when the rows carry one), LIME
    and GradLIME over all superpixels (green for, red against: the repository's rendering, which shows only
    signs), with ``weights`` GradLIME's effect b_j painted on each superpixel on one signed scale shared by every
    row (so rows whose coefficients differ look different, where the sign rendering can look the same), and with
    ``curves`` the weights per superpixel (LIME's b, GradLIME's w as the repository plots it, and b = a·w). Saved
    as PNG and PDF to ``path``."""
    columns = ["image"] + (["activation"] if rows and rows[0].activation is not None else []) + \
        ["lime", "gradlime"] + (["weights"] if weights else []) + (["curves"] if curves else [])
    lim = max((float(np.abs(r.gradlime.coef).max()) for r in rows), default=0.0) or 1.0
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(2.8 * len(columns) + 0.2, 2.9 * len(rows)),
                             squeeze=False)
    for r, row in enumerate(rows):
        for ax, column in zip(axes[r], columns):
            m = len(row.lime.coef)
            if column == "image":
                ax.imshow(row.image); ax.set_title(row.title, fontsize=9); ax.set_axis_off()
            elif column == "activation":
                ax.imshow(row.activation, cmap=CMAPS["map"]); ax.set_title(row.activation_title, fontsize=9)
                ax.set_axis_off()
            elif column in ("lime", "gradlime"):
                show_explanation(ax, getattr(row, column), row.image, m, positive_only=False,
                                 title="LIME" if column == "lime" else "GradLIME (signs)")
            elif column == "weights":
                image = ax.imshow(row.gradlime.weight_map(), cmap=CMAPS["signed"], vmin=-lim, vmax=lim)
                ax.set_title("GradLIME b per superpixel", fontsize=9); ax.set_axis_off()
                fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
            else:
                ids = np.arange(m)
                ax.plot(ids, row.lime.coef, label="LIME b", lw=1.2)
                ax.plot(ids, row.gradlime.surrogate_coef, label="GradLIME w (repo's curve)", lw=1.2)
                ax.plot(ids, row.gradlime.coef, "--", label="GradLIME b = a·w", lw=1)
                ax.axhline(0, color="k", lw=0.5); ax.set_xlabel("superpixel id"); ax.legend(fontsize=7)
                ax.set_title("Curves", fontsize=9)
    return finish_figure(fig, title, path)


def plot_framework(hood: Neighborhood, label: int, layer: str, layer_map: np.ndarray, cam: np.ndarray,
                   activation: np.ndarray, explanation: SurrogateExplanation, class_name: str,
                   title: str = "", path=None):
    """The GradLIME paper's Figure 1 (its framework) drawn from one run's real intermediate results.

    Top row, LIME's path: the input X, its superpixels X', the binary codes Z', one perturbed image and the
    black box's sorted outputs P. Bottom row, the gradient path: the Grad-CAM map at ``layer`` (``layer_map``,
    feature-map resolution), the map resized over the image (A, ``cam``), its mean per superpixel
    (a, Eq. 8), the scaled codes S = Z' diag(a) and the surrogate's weights (Eq. 9). Right: the explanation.
    Saved as PNG and PDF to ``path``.
    """
    image, codes = hood.image, hood.data[:30]
    fig = plt.figure(figsize=(13, 5.2))
    grid = fig.add_gridspec(2, 6, hspace=0.45, wspace=0.3)

    def panel(r, c, name):
        ax = fig.add_subplot(grid[r, c])
        ax.set_title(name, fontsize=9); ax.set_xticks([]); ax.set_yticks([])
        return ax

    codes_view = {"cmap": CMAPS["binary"], "aspect": "auto", "interpolation": "nearest"}
    panel(0, 0, "X: input").imshow(image)
    show_segments(panel(0, 1, ""), image, hood.segments, f"X': {hood.num_superpixels} superpixels")
    panel(0, 2, "Z' (binary codes)").imshow(codes, **codes_view)
    panel(0, 3, f"Z: perturbed, p = {hood.predictions[3, label]:.2f}").imshow(hood.perturbed_image(3))
    ax = panel(0, 4, "black box outputs P")
    ax.plot(np.sort(hood.predictions[:, label])[::-1]); ax.set_xlabel("samples", fontsize=8)
    panel(1, 0, f"layer {layer}: Grad-CAM").imshow(layer_map, cmap=CMAPS["map"])
    show_heatmap(panel(1, 1, ""), image, cam, "A: gradient activation")
    show_activation(panel(1, 2, ""), activation, hood.segments, "a: per superpixel (Eq. 8)")
    panel(1, 3, "S = Z' diag(a)").imshow(codes * activation, **codes_view)
    coef = explanation.coef
    panel(1, 4, "g: weighted ridge (Eq. 9)").bar(range(len(activation)), coef,
                                                   color=np.where(coef > 0, "tab:green", "tab:red"))
    show_explanation(fig.add_subplot(grid[:, 5]), explanation, image, 8, positive_only=False,
                     title=f"explanation: {class_name}")
    fig.suptitle(title, fontsize=11)
    if path is not None:
        save_figure(fig, path)
    return fig


def comparison_record(row: Comparison) -> dict:
    """What the chapter's JSON keeps of one G-4 row: the class and the three weight curves."""
    return {"label": row.label, "lime": row.lime.coef.tolist(), "gradlime_w": row.gradlime.surrogate_coef.tolist(),
            "gradlime_b": row.gradlime.coef.tolist()}
