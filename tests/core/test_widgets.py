import matplotlib
import matplotlib.pyplot as plt
import pytest

import gradlime_utils as gu

matplotlib.use("Agg")

calls = []


def draw(k, t=0.5):
    calls.append((k, t))
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.bar([0], [k * t])
    return fig


def test_one_slider_links_index_to_a_stack_of_precomputed_images():
    calls.clear()
    fig = gu.slider_figure(draw, {"k": [1, 2, 3]}, initial={"k": 2})
    assert calls == [(1, 0.5), (2, 0.5), (3, 0.5)]
    assert fig.stack.selected_index == 1 == fig.sliders[0].index
    assert len({img.value for img in fig.stack.children}) == 3 and all(img.value for img in fig.stack.children)
    assert not plt.get_fignums()  # figures are closed, not shown twice


def test_two_sliders_nest_stacks():
    fig = gu.slider_figure(draw, {"k": [1, 2], "t": [0.1, 0.2, 0.3]}, initial={"t": 0.3})
    assert len(fig.stack.children) == 2 and all(len(s.children) == 3 for s in fig.stack.children)
    assert [s.selected_index for s in fig.inner] == [2, 2]
    assert fig.current() == {"k": 1, "t": 0.3}


def test_a_parameter_with_one_value_is_shown_but_cannot_move():
    """A profile that fixes a parameter (smoke's single photo) leaves its slider in place, disabled."""
    fig = gu.slider_figure(draw, {"k": [1], "t": [0.1, 0.2]})
    assert [s.disabled for s in fig.sliders] == [True, False] and fig.current() == {"k": 1, "t": 0.1}


def test_lazy_mode_draws_on_first_visit_only():
    calls.clear()
    fig = gu.slider_figure(draw, {"k": [1, 2, 3]}, precompute=False)
    assert calls == [(1, 0.5)]
    fig.sliders[0].index = 2
    fig.sliders[0].index = 0
    assert calls == [(1, 0.5), (3, 0.5)]


@pytest.mark.parametrize("params, kwargs, match", [
    ({}, {}, "one or two parameters"),
    ({"a": [1], "b": [1], "c": [1]}, {}, "one or two parameters"),
    ({"k": []}, {}, "at least one value"),
    ({"k": [1, 2]}, {"initial": {"k": 5}}, "not one of"),
    ({"k": [1, 2]}, {"initial": {"z": 1}}, "unknown parameters"),
])
def test_bad_arguments(params, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gu.slider_figure(draw, params, **kwargs)


def test_each_frame_is_stored_as_the_smaller_of_png_and_jpeg():
    import numpy as np

    chelsea = gu.load_image("chelsea", size=224)

    def photo(noise):  # a photo, as the chapters' heat-map sliders show: JPEG is several times smaller
        fig, ax = plt.subplots(figsize=(3, 3))
        ax.imshow((chelsea * noise).astype(np.uint8))
        return fig

    frames = gu.slider_figure(photo, {"noise": [0.5, 1.0]})
    assert {img.format for img in frames.stack.children} == {"jpeg"}
    plot = gu.slider_figure(draw, {"k": [1, 2]})  # a flat bar plot: PNG is smaller
    assert {img.format for img in plot.stack.children} == {"png"}
    assert all(img.value[:2] == b"\xff\xd8" for img in frames.stack.children)  # really JPEG bytes
    png, fmt = gu.widgets.figure_to_image(draw(1, 0.5), formats=("png",))
    assert fmt == "png" and png[:4] == b"\x89PNG" and not plt.get_fignums()
