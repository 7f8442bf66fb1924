"""Slider figures that stay live twice: in a running kernel and in the published static book.

In the static HTML book there is no Python: a slider can only switch between images computed at build
time. So :func:`slider_figure` renders the figure for every listed parameter value into a ``Stack`` of
``Image`` widgets and links the slider's index to the stack's ``selected_index`` with ``jslink``, a
link that the browser keeps alive from the saved widget state (nested stacks for two sliders). In
Jupyter, Colab or Binder the same links work; with ``precompute=False`` figures are instead drawn on
first visit by a Python callback, from the chapter's cached results (no new model calls).
"""
from __future__ import annotations

import io
import itertools
from typing import Any, Callable, Mapping, Sequence

import ipywidgets as widgets
import matplotlib
import matplotlib.pyplot as plt

from gradlime_utils.validation import check_int


def figure_to_image(fig: matplotlib.figure.Figure, dpi: int = 90, formats: Sequence[str] = ("png", "jpeg"),
                    quality: int = 88) -> tuple[bytes, str]:
    """Render ``fig`` in each of ``formats`` and return the smallest (bytes, format); close the figure.

    Every frame of a slider is saved in the published page's widget state, so its size is the page's weight: a
    frame showing a photo or a heat map is 3-5 times smaller as a JPEG (``quality`` 88), a line plot smaller as a
    PNG, so each frame gets whichever is smaller."""
    sizes = {}
    for fmt in formats:
        buf = io.BytesIO()
        kwargs = {"pil_kwargs": {"quality": quality}} if fmt == "jpeg" else {}
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", **kwargs)
        sizes[fmt] = buf.getvalue()
    plt.close(fig)
    fmt = min(sizes, key=lambda f: len(sizes[f]))
    return sizes[fmt], fmt


def _label(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class SliderFigure(widgets.VBox):
    """One or two ``SelectionSlider``s above a (nested) ``Stack`` of pre-rendered figures."""

    def __init__(self, draw: Callable[..., matplotlib.figure.Figure], params: Mapping[str, Sequence],
                 initial: Mapping[str, Any] | None = None, precompute: bool = True, dpi: int = 90,
                 descriptions: Mapping[str, str] | None = None):
        if not 1 <= len(params) <= 2:
            raise ValueError(f"slider_figure takes one or two parameters, got {list(params)}")
        if not callable(draw):
            raise TypeError(f"draw must be a function returning a matplotlib Figure, got {draw!r}")
        dpi = check_int("dpi", dpi, low=10)
        self.draw, self.dpi = draw, dpi
        self.names = list(params)
        for name, vals in params.items():
            if isinstance(vals, (str, bytes)) or not isinstance(vals, Sequence):
                raise TypeError(f"parameter {name!r} needs a list of values, got {vals!r}")
        self.values = {name: list(vals) for name, vals in params.items()}
        for name, vals in self.values.items():
            if not vals:
                raise ValueError(f"parameter {name!r} needs at least one value")
        initial = dict(initial or {})
        unknown = set(initial) - set(self.names)
        if unknown:
            raise ValueError(f"initial names unknown parameters {sorted(unknown)}")
        start = []
        for name in self.names:
            value = initial.get(name, self.values[name][0])
            if value not in self.values[name]:
                raise ValueError(f"initial value {value!r} of {name!r} is not one of {self.values[name]}")
            start.append(self.values[name].index(value))
        descriptions = descriptions or {}
        self.sliders = [
            widgets.SelectionSlider(options=[(_label(v), i) for i, v in enumerate(self.values[name])],
                                    value=start[k], description=descriptions.get(name, name),
                                    continuous_update=True, style={"description_width": "initial"},
                                    layout=widgets.Layout(width="420px"),
                                    disabled=len(self.values[name]) == 1)  # one value: shown, fixed
            for k, name in enumerate(self.names)]
        # SelectionSlider options are (label, index) pairs, so `value` is the index as well; link
        # `index`, which is what the browser-side model updates.
        self.images: dict[tuple[int, ...], widgets.Image] = {}
        combos = list(itertools.product(*(range(len(self.values[n])) for n in self.names)))
        for combo in combos:
            value, fmt = self._render(combo) if precompute else (b"", "png")
            self.images[combo] = widgets.Image(format=fmt, value=value)
        if len(self.names) == 1:
            self.stack = widgets.Stack([self.images[(i,)] for i in range(len(self.values[self.names[0]]))],
                                       selected_index=start[0])
            widgets.jslink((self.sliders[0], "index"), (self.stack, "selected_index"))
            self.inner = [self.stack]
        else:
            n0, n1 = (len(self.values[n]) for n in self.names)
            self.inner = [widgets.Stack([self.images[(i, j)] for j in range(n1)], selected_index=start[1])
                          for i in range(n0)]
            self.stack = widgets.Stack(self.inner, selected_index=start[0])
            widgets.jslink((self.sliders[0], "index"), (self.stack, "selected_index"))
            for inner in self.inner:
                widgets.jsdlink((self.sliders[1], "index"), (inner, "selected_index"))
        if not precompute:
            for slider in self.sliders:
                slider.observe(self._fill_current, names="index")
            self._fill_current()
        super().__init__([*self.sliders, self.stack])

    def _render(self, combo: tuple[int, ...]) -> tuple[bytes, str]:
        kwargs = {name: self.values[name][i] for name, i in zip(self.names, combo)}
        fig = self.draw(**kwargs)
        if not isinstance(fig, matplotlib.figure.Figure):
            raise TypeError(f"draw must return a matplotlib Figure, got {type(fig).__name__} for {kwargs}")
        return figure_to_image(fig, dpi=self.dpi)

    def current(self) -> dict[str, Any]:
        """The parameter values the sliders show now."""
        return {name: self.values[name][s.index] for name, s in zip(self.names, self.sliders)}

    def _fill_current(self, change=None) -> None:
        combo = tuple(s.index for s in self.sliders)
        if not self.images[combo].value:
            value, fmt = self._render(combo)
            self.images[combo].format, self.images[combo].value = fmt, value


def slider_figure(draw: Callable[..., matplotlib.figure.Figure], params: Mapping[str, Sequence], *,
                  initial: Mapping[str, Any] | None = None, precompute: bool = True, dpi: int = 90,
                  descriptions: Mapping[str, str] | None = None) -> SliderFigure:
    """Turn ``draw(**values) -> Figure`` and the values of one or two parameters into a slider figure.

    ``draw`` must only redraw from results the chapter already computed (no model calls): it runs once
    per combination of values at build time (``precompute=True``, required for the static book), or on
    first visit in a live kernel (``precompute=False``).

    Example::

        slider_figure(lambda k: show_top_superpixels(exp, k), {"num_features": [1, 3, 5, 10]})
    """
    return SliderFigure(draw, params, initial=initial, precompute=precompute, dpi=dpi, descriptions=descriptions)
