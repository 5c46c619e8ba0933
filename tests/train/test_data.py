import numpy as np
import pytest
from PIL import Image

from snapfusion_coreml.errors import UserError
from snapfusion_coreml.train.data import DataStream, load_examples


def test_prompt_list(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("one\n\n# skipped\n two \n")
    assert [e.caption for e in load_examples(path)] == ["one", "two"]


def test_image_text_folder(tmp_path):
    for i, color in enumerate([(255, 0, 0), (0, 0, 255)]):
        Image.new("RGB", (20, 10), color).save(tmp_path / f"img{i}.png")
        (tmp_path / f"img{i}.txt").write_text(f"caption {i}\n")
    examples = load_examples(tmp_path)
    assert [e.caption for e in examples] == ["caption 0", "caption 1"]
    batch = DataStream(examples, 2, seed=0, image_size=16).batch(0)
    assert batch.images.shape == (2, 3, 16, 16) and batch.latents is None
    red = batch.images[batch.captions.index("caption 0")]
    assert red[0].min() == 1.0 and red[2].max() == -1.0  # (255, 0, 0) -> (1, -1, -1)


def test_latent_folder(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((4, 8, 8), np.float32))
    (tmp_path / "a.txt").write_text("x")
    batch = DataStream(load_examples(tmp_path), 3, seed=0).batch(0)
    assert batch.latents.shape == (3, 4, 8, 8) and batch.images is None


def test_clear_errors(tmp_path):
    with pytest.raises(UserError, match=r"got none \(in .*\)"):
        load_examples(tmp_path)  # empty folder
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(UserError, match="caption file x.txt"):
        load_examples(tmp_path)
    with pytest.raises(UserError, match="not found"):
        load_examples(tmp_path / "missing")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# only a comment\n")
    with pytest.raises(UserError, match="at least one prompt"):
        load_examples(empty)


def test_deterministic_order_dropout_and_rank_slices(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("\n".join(f"prompt {i}" for i in range(10)))
    examples = load_examples(path)
    a = DataStream(examples, 4, seed=3, caption_dropout=0.3)
    b = DataStream(examples, 4, seed=3, caption_dropout=0.3)
    assert [a.batch(m).captions for m in range(20)] == [b.batch(m).captions for m in range(20)]
    assert a.batch(1).captions != DataStream(examples, 4, seed=4, caption_dropout=0.3).batch(1).captions
    # an epoch visits every example once
    first_epoch = [i for m in range(5) for i in DataStream(examples, 2, seed=1).indices(m)]
    assert sorted(first_epoch) == list(range(10))
    # caption dropout rate
    drops = [c == "" for m in range(500) for c in a.batch(m).captions]
    assert np.mean(drops) == pytest.approx(0.3, abs=0.03)
    # two processes see disjoint halves of the same global batch
    r0 = DataStream(examples, 2, seed=1, rank=0, world_size=2).indices(0)
    r1 = DataStream(examples, 2, seed=1, rank=1, world_size=2).indices(0)
    assert r0 + r1 == DataStream(examples, 4, seed=1).indices(0)
