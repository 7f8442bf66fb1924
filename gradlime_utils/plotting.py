"""Small drawing helpers the chapters share (each draws on a given matplotlib Axes)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import numpy as np
from IPython.display import Markdown
from skimage.segmentation import mark_boundaries



# One colour map per quantity, for every figure of the book (a test fails on any other colour map name written in
# the package or a chapter).
CMAPS = {
    "map": "magma",       # unsigned maps: Grad-CAM, layer activations, attributions, GAD maps, heat maps
    "signed": "RdBu_r",   # signed weights and maps, symmetric around 0: LIME and GradLIME coefficients
    "image": "gray",      # greyscale input images (digits)
    "binary": "gray_r",   # 0/1 matrices and masks: LIME's codes Z'
    "weight": "viridis",  # sample weights (LIME's kernel) as point colours
}


def show_segments(ax, image: np.ndarray, segments: np.ndarray, title: str | None = None) -> None:
    ax.imshow(mark_boundaries(image, segments, color=(1, 1, 0)))
    ax.set_title(title or f"{segments.max() + 1} superpixels", fontsize=9)
    ax.set_axis_off()


def show_explanation(ax, explanation: "SurrogateExplanation", image: np.ndarray, num_features: int = 5,
                     positive_only: bool = False, hide_rest: bool = False, title: str | None = None) -> None:
    """lime's two standard views: top positive superpixels on black (``hide_rest``), or green/red tints."""
    if hide_rest:
        mask = explanation.mask(num_features, positive_only=True)
        shown = np.where((mask == 1)[..., None], image, 0)
        ax.imshow(mark_boundaries(shown / 255.0, mask == 1))
    else:
        ax.imshow(explanation.overlay(image, num_features, positive_only=positive_only))
    ax.set_title(title or f"{explanation.mode} (top {num_features})", fontsize=9)
    ax.set_axis_off()


def show_heatmap(ax, image: np.ndarray, heatmap: np.ndarray, title: str = "", alpha: float = 0.5,
                 cmap: str = CMAPS["map"], signed: bool = False) -> None:
    """``heatmap`` over ``image``; ``signed`` draws it red/blue around 0 (a signed LIME map: blue speaks against)."""
    ax.imshow(image)
    if signed:
        lim = float(np.abs(heatmap).max()) or 1.0
        ax.imshow(heatmap, cmap=CMAPS["signed"], vmin=-lim, vmax=lim, alpha=alpha)
    else:
        ax.imshow(heatmap, cmap=cmap, alpha=alpha)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def show_activation(ax, activation: np.ndarray, segments: np.ndarray, title: str = "") -> None:
    """A per-superpixel vector painted onto its superpixels."""
    ax.imshow(np.asarray(activation)[segments], cmap=CMAPS["map"], vmin=0,
              vmax=max(1e-12, float(np.max(activation))))
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def save_figure(fig, path, dpi: int = 110, pdf: bool = True) -> None:
    """Save ``fig`` as ``path`` (PNG) and, with ``pdf``, a vector PDF beside it: every chapter figure's two files."""
    path = Path(path)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    if pdf:
        fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight")


def finish_figure(fig, title: str | None = None, path=None, dpi: int = 110, fontsize: int = 10):
    """The end of every figure function: the ``title`` over the whole figure, a tight layout and, given
    ``path``, the PNG and PDF of :func:`save_figure`. Returns ``fig``."""
    if title is not None:
        fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


NBSP = "\u00a0"
ZWSP = "\u200b"


def header(name: str) -> str:
    """A table header that may break between the words of a CamelCase name ("Pointing|Game"), never inside a
    word: a zero-width space at each lower-to-upper boundary (the book's stylesheet breaks headers only there)."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", ZWSP, str(name))


def pm(mean: float, half: float, digits: int = 2, signed: bool = False) -> str:
    """"mean ± half" joined by non-breaking spaces, so that a table cell never splits a number from its
    interval (the site check fails a "±" cell that wraps); just the mean when the half-width is undefined."""
    head = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    return head + (f"{NBSP}±{NBSP}{half:.{digits}f}" if np.isfinite(half) else "")


class Glued(dict):
    """The texts :func:`glue` handed to the page: a dict that shows nothing when it ends a notebook cell (its
    numbers belong in the prose, never as a raw dict on the page)."""

    def _ipython_display_(self):
        return None


def glue(values: Mapping[str, object], fmt: str = "") -> dict[str, str]:
    """Hand this run's numbers to the chapter's prose: each ``name: value`` becomes the Markdown text
    ``format(value, fmt)`` that the page cites as ``{glue:md}`name```, so a sentence in a Markdown cell quotes the
    number the run computed instead of a number typed in by hand.

    Outside a Jupyter Book build without ``myst_nb`` (a plain papermill run of the core package) nothing is glued;
    the texts are returned either way.
    """
    texts = Glued()
    for name, value in values.items():
        if isinstance(value, (float, np.floating)) and not np.isfinite(value):
            raise ValueError(f"values[{name!r}] must be finite, got {value}")
        texts[name] = format(value, fmt) if fmt else str(value)
    try:
        from myst_nb import glue as nb_glue  # lazy: heavy import, and the book extra may be absent
    except ImportError:
        return texts
    for name, text in texts.items():
        nb_glue(name, Markdown(text), display=False)
    return texts
