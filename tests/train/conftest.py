import warnings

import pytest
import torch

from snapfusion_coreml.modeling.factory import build_tiny_pipeline
from snapfusion_coreml.modeling.loading import save_pipeline
from snapfusion_coreml.train.loop import TrainingConfig


@pytest.fixture(scope="session", autouse=True)
def flush_denormals():
    """The tiny random models produce subnormal floats that make CPU kernels ~3x slower."""
    warnings.filterwarnings("ignore", message="The value of the smallest subnormal")  # numpy notices the flush
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory):
    """A tiny v-prediction teacher (64 px images, 8x8 latents) saved as a model folder."""
    root = tmp_path_factory.mktemp("teacher")
    save_pipeline(build_tiny_pipeline(prediction_type="v_prediction"), root / "teacher")
    return root / "teacher"


@pytest.fixture(scope="session")
def eps_model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("eps")
    save_pipeline(build_tiny_pipeline(prediction_type="epsilon"), root / "model")
    return root / "model"


@pytest.fixture()
def prompts(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("a red cube\na blue ball\n# a comment\n\na green tree\na small cat\n")
    return path


def _training(out, **kw):
    defaults = dict(max_steps=4, batch_size=2, learning_rate=2e-3, ema_decay=0.0, checkpoint_every=0, progress=False)
    return TrainingConfig(out, **{**defaults, **kw})


@pytest.fixture()
def training():
    """TrainingConfig(out, **overrides) with small, fast defaults."""
    return _training
