"""Weights built in the session: a judge trained on a few scenes (the shipped one is checked on
its own), a tiny CLIP saved by transformers' save_pretrained, and a tiny TorchScript network
standing in for FID's inception-2015-12-05.pt (same call: net(uint8 images, return_features=True))."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def small_judge_dir(tmp_path_factory):
    from snapfusion_coreml.eval.train_judge import JudgeTraining, train_judge

    out = tmp_path_factory.mktemp("judge") / "judge"
    train_judge(JudgeTraining(train_images=96, held_out_images=24, epochs=1, batch_size=32), out, command="test")
    return out


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    """A tiny random CLIP: model, tokenizer (the real CLIP BPE) and image preprocessor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    from snapfusion_coreml.assets import tokenizer_dir

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16)
    out = tmp_path_factory.mktemp("clip") / "tiny-clip"
    CLIPModel(config).eval().save_pretrained(out)
    CLIPTokenizer(str(tokenizer_dir() / "vocab.json"), str(tokenizer_dir() / "merges.txt")).save_pretrained(out)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(out)
    return out


class TinyInception(torch.nn.Module):
    """uint8 (N, 3, H, W) in, (N, 16) features out (class probabilities without return_features)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3, stride=2)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        h = torch.relu(self.conv(x.float() / 127.5 - 1.0)).mean(dim=(2, 3))
        return h if return_features else h.softmax(dim=1)


@pytest.fixture(scope="session")
def inception_file(tmp_path_factory):
    import warnings

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("fid") / "inception-2015-12-05.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(TinyInception().eval()), str(path))
    return path
