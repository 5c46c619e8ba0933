import numpy as np
import pytest

from snapfusion_coreml.eval import shapes
from snapfusion_coreml.eval.shapes import COLORS, JITTER, SHAPES, Scene, parse_prompt, render, scene, shape_mask
from snapfusion_coreml.train.data import DataStream, load_examples

SIZE = 128


def _regions(s: Scene, image: np.ndarray):
    mask = shape_mask(s, image.shape[0])
    return mask, image[mask].astype(int), image[~mask].astype(int)


def test_deterministic_and_seed_dependent():
    assert scene(3, 17) == scene(3, 17)
    assert np.array_equal(render(scene(3, 17)), render(scene(3, 17)))
    assert [scene(0, i) for i in range(20)] != [scene(1, i) for i in range(20)]
    assert scene(0, 10**12).shape in SHAPES  # endless: any index


def test_colors_within_jitter_and_different():
    for i in range(200):
        s = scene(0, i)
        assert s.color != s.background
        mask, fg, bg = _regions(s, render(s, SIZE))
        assert np.abs(fg - np.array(COLORS[s.color])).max() <= JITTER
        assert np.abs(bg - np.array(COLORS[s.background])).max() <= JITTER
        assert (fg == fg[0]).all() and (bg == bg[0]).all()  # flat fill, hard edges


@pytest.mark.parametrize("size", [64, 128])
def test_shape_inside_and_sized(size):
    for i in range(200):
        s = scene(5, i)
        mask = shape_mask(s, size)
        ys, xs = np.nonzero(mask)
        width, height = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
        # inside with a background pixel somewhere: the box never touches all four edges
        assert 0 <= xs.min() and xs.max() < size and 0 <= ys.min() and ys.max() < size
        lo, hi = shapes.MIN_SIDE * size - 1, shapes.MAX_SIDE * size + 1
        assert lo <= width <= hi and lo <= height <= hi, (s, width, height)
        if s.shape == "square":
            assert mask.sum() == width * height
        if s.shape == "circle":
            assert mask.sum() == pytest.approx(np.pi / 4 * width * height, rel=0.1)
        if s.shape == "triangle":  # upright: the top row is narrow, the bottom row is the full base
            rows = mask[ys.min()], mask[ys.max()]
            assert rows[0].sum() <= 2 and rows[1].sum() >= width - 2
            assert mask.sum() == pytest.approx(width * height / 2, rel=0.1)


def test_every_attribute_occurs():
    drawn = [scene(0, i) for i in range(1000)]
    assert {s.shape for s in drawn} == set(SHAPES)
    assert {s.color for s in drawn} == set(COLORS) == {s.background for s in drawn}


def test_caption_parses_back():
    for i in range(300):
        s = scene(2, i)
        assert parse_prompt(s.caption()) == {"shape": s.shape, "color": s.color, "background": s.background}
    assert scene_with("orange").caption().startswith("an orange ")
    assert parse_prompt("a orange square on an white background") == {"shape": "square", "color": "orange",
                                                                       "background": "white"}
    assert parse_prompt("  An Orange Triangle on a Black background. ") == {"shape": "triangle", "color": "orange",
                                                                             "background": "black"}
    for bad in ["a red circle", "a pink circle on a blue background", "a red cube on a blue background", ""]:
        assert parse_prompt(bad) is None


def scene_with(color: str) -> Scene:
    return next(s for s in (scene(0, i) for i in range(1000)) if s.color == color)


def test_data_spec_streams_rendered_images(tmp_path, monkeypatch):
    source = load_examples("shapes:7")
    assert source.seed == 7 and load_examples("shapes").seed == 0
    a = DataStream(source, 3, seed=0, image_size=32).batch(2)
    assert a.images.shape == (3, 3, 32, 32) and a.latents is None
    assert a.captions == [scene(7, i).caption() for i in range(6, 9)]
    expected = render(scene(7, 6), 32).astype(np.float32) / 127.5 - 1.0
    assert np.allclose(a.images[0].permute(1, 2, 0).numpy(), expected)
    # two processes split a global batch into disjoint halves
    r0 = DataStream(source, 2, seed=0, rank=0, world_size=2).indices(1)
    r1 = DataStream(source, 2, seed=0, rank=1, world_size=2).indices(1)
    assert r0 + r1 == DataStream(source, 4, seed=0).indices(1)
    # an existing file of that name is read as a file instead
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shapes").write_text("a prompt\n")
    assert [e.caption for e in load_examples("shapes")] == ["a prompt"]
