"""The tiny SD folder (tests/conftest.py's diffusers_folder, whose vae/ is a full AutoencoderKL)
converted once with its VAE encoder, shared by the image-to-image tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def converted_with_encoder(tmp_path_factory, diffusers_folder):
    import torch

    from snapfusion_coreml.convert import ConvertOptions, convert_pipeline

    out = tmp_path_factory.mktemp("converted-img2img") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        convert_pipeline(str(diffusers_folder[0]), ConvertOptions(out=out, unet_batch=2))
    finally:
        torch.set_num_threads(threads)
    return out
