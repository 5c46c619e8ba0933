"""Shared fixtures: tiny seeded pipelines built in the test session (nothing is downloaded)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def tiny_pipeline():
    from snapfusion_coreml.modeling.factory import build_tiny_pipeline

    return build_tiny_pipeline(prediction_type="v_prediction")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_pipeline):
    """The tiny pipeline saved in this project's folder format."""
    from snapfusion_coreml.modeling.loading import save_pipeline

    out = tmp_path_factory.mktemp("models") / "tiny"
    save_pipeline(tiny_pipeline, out)
    return out


@pytest.fixture(scope="module")
def one_thread():
    """Tiny Core ML programs run fastest on one thread (and do not fight other jobs for cores)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_converted_dir(tmp_path_factory, tiny_model_dir):
    """The tiny pipeline converted by `convert` (fp16, UNet batch 2), shared by the session."""
    from snapfusion_coreml.convert import ConvertOptions, convert_pipeline

    out = tmp_path_factory.mktemp("converted") / "out"
    convert_pipeline(str(tiny_model_dir), ConvertOptions(out=out))
    return out
