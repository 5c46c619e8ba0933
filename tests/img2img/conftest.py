"""The tiny SD folder (tests/conftest.py's diffusers_folder, whose vae/ is a full AutoencoderKL)
converted once with its VAE encoder, shared by the image-to-image tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def converted_with_encoder(convert_once, diffusers_folder):
    return convert_once(diffusers_folder[0], unet_batch=2)
