"""Shared fixtures: tiny seeded pipelines built in the test session (nothing is downloaded).

Conversions are the slow part of the suite: `convert_once` makes each (model content, options)
conversion once per test run and hands every test and every pytest-xdist worker that asks for the
same one the same folder (read-only: a test that changes a converted folder copies it first).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Callable

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # one thread per worker: `scripts/test.sh` runs one worker per core
        import torch

        torch.set_num_threads(1)


# Fixtures that convert or build before their test runs: a test that uses one (directly or through
# another fixture) is slow, as a test that converts in its own body is marked by hand.
BUILDING_FIXTURES = {"convert_once", "convert_each", "converted", "exported", "analysed", "swift_cli"}


@pytest.hookimpl(trylast=True)  # after pytest-xdist's own hook, which this completes
def pytest_collection_modifyitems(config, items):
    for item in items:
        if BUILDING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        if getattr(config.option, "loadgroup", False):
            _group_for_xdist(item)


def _group_for_xdist(item) -> None:
    """`--dist loadgroup` sends every test of one `xdist_group` to one worker (so a module's fixtures
    are built once) by reading a '@GROUP' suffix of the node id, which pytest-xdist's worker writes
    as `item._nodeid`; pytest 9 keeps the node id in `item._id`, so there the suffix was lost and
    the group's tests were spread over the workers, each building the module's fixtures."""
    groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")})
    if not groups or "@" in item.nodeid:
        return
    nodeid = f"{item.nodeid}@{'_'.join(groups)}"
    if hasattr(item, "_id"):
        from _pytest.nodeid import coerce_node_id

        item._id = coerce_node_id(nodeid)
    else:
        item._nodeid = nodeid


def run_folder(tmp_path_factory) -> Path:
    """The folder this test run's workers share: xdist gives each worker its own base temp below it."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def build_once(root: Path, key: str, build: Callable[[Path], None], wait: bool = True) -> Path | None:
    """root/shared/key (a folder) filled by `build(path)` once per run: the first worker to ask builds it under a
    file lock, the others wait for it and reuse it. A build that failed is retried by the next asker.
    With wait=False, None (nothing built) while another worker holds the lock, building it."""
    from filelock import FileLock, Timeout

    target = root / "shared" / key
    target.parent.mkdir(parents=True, exist_ok=True)
    done = target.parent / f"{key}.done"
    lock = FileLock(str(target.parent / f"{key}.lock"))
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        return None
    try:
        if not done.exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            build(target)
            done.touch()
    finally:
        lock.release()
    return target


@pytest.fixture(scope="session")
def convert_once(tmp_path_factory):
    """convert_once(model, **ConvertOptions fields) -> the folder `convert_pipeline` writes for them,
    made once per run for each (model folder content, options) and shared."""
    from snapfusion_coreml.digests import tree_sha256

    root = run_folder(tmp_path_factory)

    def convert(model: Path, wait: bool = True, **options) -> Path | None:
        from snapfusion_coreml.convert import ConvertOptions, convert_pipeline

        key = hashlib.sha256(f"{tree_sha256(model)} {sorted(options.items())!r}".encode()).hexdigest()[:16]
        folder = build_once(root, f"converted-{key}",
                            lambda out: convert_pipeline(str(model), ConvertOptions(out=out / "out", **options)), wait)
        return folder / "out" if folder else None

    return convert


@pytest.fixture(scope="session")
def convert_each(convert_once):
    """convert_each(model, [options, ...]) -> the folders convert_once makes for each options dict; a
    worker that finds one of them being converted by another converts the next one meanwhile,
    instead of waiting for it."""

    def convert(model: Path, option_sets: list[dict]) -> list[Path]:
        for options in option_sets:
            convert_once(model, wait=False, **options)
        return [convert_once(model, **options) for options in option_sets]

    return convert


@pytest.fixture(scope="session")
def tiny_pipeline():
    from snapfusion_coreml.modeling.factory import build_tiny_pipeline

    return build_tiny_pipeline(prediction_type="v_prediction")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_pipeline):
    """The tiny pipeline saved in this project's folder format (one folder per run: a converted
    folder names its source model's path, so every worker converts the same path)."""
    from snapfusion_coreml.modeling.loading import save_pipeline

    return build_once(run_folder(tmp_path_factory), "models", lambda out: save_pipeline(tiny_pipeline, out / "tiny")) / "tiny"


@pytest.fixture(scope="session")
def micro_pipeline():
    """The tiny pipeline (text encoder, decoder, sampler) with tests/micro_layout.py's UNet (one head)."""
    from micro_layout import micro_layout

    from snapfusion_coreml.modeling.factory import build_tiny_pipeline

    return build_tiny_pipeline(micro_layout(), prediction_type="v_prediction")


@pytest.fixture(scope="session")
def micro_model_dir(tmp_path_factory, micro_pipeline):
    """micro_pipeline saved in this project's folder format, one folder per run (as tiny_model_dir)."""
    from snapfusion_coreml.modeling.loading import save_pipeline

    return build_once(run_folder(tmp_path_factory), "micro-models", lambda out: save_pipeline(micro_pipeline, out / "micro")) / "micro"


@pytest.fixture(scope="module")
def one_thread():
    """Tiny Core ML programs run fastest on one thread (and do not fight other jobs for cores)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_converted_dir(convert_once, tiny_model_dir):
    """The tiny pipeline converted by `convert` (fp16, UNet batch 2)."""
    return convert_once(tiny_model_dir)


@pytest.fixture(scope="session")
def diffusers_folder(tmp_path_factory):
    """A tiny SD-format folder written by diffusers/transformers themselves:
    (root, unet, vae, text encoder) with seeded weights N(0, 0.05)."""
    import json
    import shutil

    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from snapfusion_coreml.assets import tokenizer_dir
    from snapfusion_coreml.modeling.factory import TINY_TEXT

    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=2, norm_num_groups=8, sample_size=8, layers_per_block=1)
    vae = AutoencoderKL(block_out_channels=(8, 16, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=8, layers_per_block=1)
    text = CLIPTextModel(CLIPTextConfig(**TINY_TEXT))
    for module in (unet, vae, text):
        for p in module.parameters():
            p.data.normal_(0, 0.05)

    def save(out: Path) -> None:
        root = out / "tiny-sd"
        unet.save_pretrained(root / "unet")
        vae.save_pretrained(root / "vae")
        text.save_pretrained(root / "text_encoder")
        shutil.copytree(tokenizer_dir(), root / "tokenizer")
        DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1).save_config(root / "scheduler")
        (root / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))

    root = build_once(run_folder(tmp_path_factory), "sd", save) / "tiny-sd"
    return root, unet.eval(), vae.eval(), text.eval()


@pytest.fixture(scope="session")
def lcm_unet_folder(tmp_path_factory, diffusers_folder):
    """The tiny SD folder with a full LCM UNet (time_cond_proj_dim) saved by diffusers."""
    import json
    import shutil

    import torch
    from diffusers import LCMScheduler, UNet2DConditionModel

    root, _, vae, text = diffusers_folder
    torch.manual_seed(3)
    unet = UNet2DConditionModel(block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=2, norm_num_groups=8, sample_size=8, layers_per_block=1,
                                time_cond_proj_dim=16)
    for p in unet.parameters():
        p.data.normal_(0, 0.05)

    def save(folder: Path) -> None:
        out = folder / "tiny-lcm"
        for name in ("vae", "text_encoder", "tokenizer"):
            shutil.copytree(root / name, out / name)
        unet.save_pretrained(out / "unet")
        LCMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, set_alpha_to_one=True).save_config(out / "scheduler")
        (out / "model_index.json").write_text(json.dumps({"_class_name": "LatentConsistencyModelPipeline"}))

    return build_once(run_folder(tmp_path_factory), "lcm", save) / "tiny-lcm", unet.eval(), vae, text
