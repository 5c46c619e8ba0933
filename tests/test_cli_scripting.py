"""The CLI as a CI script drives it: real signals, full and read-only disks, odd paths, option
checks before any model loads, strict JSON, reproducible output (README "Exit codes and scripting")."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_runner import run_cli
from snapfusion_coreml import __version__
from snapfusion_coreml.digests import tree_sha256

REPO = Path(__file__).resolve().parents[1]


# ---- helpers -------------------------------------------------------------------------------

def start_cli(args: list[str], cwd: Path, **extra_env: str) -> subprocess.Popen:
    """The CLI in a child process, as a CI job runs it (stdout and stderr are pipes)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), TQDM_DISABLE="1", **extra_env)
    for name in ("TRANSFORMERS_VERBOSITY", "TRANSFORMERS_NO_ADVISORY_WARNINGS"):  # set by in-process runs
        env.pop(name, None)
    return subprocess.Popen([sys.executable, "-m", "snapfusion_coreml", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the CLI exited ({proc.returncode}) before {what}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def torch_loaded(pid: int) -> bool:
    """The child has imported torch: it is past argument parsing, inside the command."""
    try:
        return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def leftovers(parent: Path, name: str) -> list[Path]:
    """Hidden siblings of OUT: partial folders, old copies, lock files."""
    return sorted(parent.glob(f".{name}.*"))


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def converted(tiny_model_dir, convert_once) -> Path:
    """The tiny pipeline's decoder converted once (a previous good OUT for the tests below)."""
    return convert_once(tiny_model_dir, components=("decoder",))


@pytest.fixture
def mount_tmpfs(tmp_path):
    """mount_tmpfs(options) -> a fresh tmpfs folder, or None where this user cannot mount."""
    mounted = []

    def mount(options: str) -> Path | None:
        target = tmp_path / f"mnt{len(mounted)}"
        target.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True)
        if done.returncode != 0:
            return None
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


# ---- signals -------------------------------------------------------------------------------

@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
@pytest.mark.slow
def test_signal_during_convert_keeps_the_previous_out(sig, code, word, tiny_model_dir, converted, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(converted, out)
    before = tree_sha256(out)
    proc = start_cli(["convert", tiny_model_dir, "-o", out, "--overwrite", "--components", "decoder"], tmp_path)
    wait_for(lambda: any(tmp_path.glob(".out.partial-*")), proc, "the partial folder exists")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert err.strip().splitlines()[-1] == f"{word}; {out} untouched"
    assert "Traceback" not in err
    assert leftovers(tmp_path, "out") == [] and tree_sha256(out) == before


@pytest.mark.slow
def test_sigkill_leftover_is_removed_and_reported_by_the_next_run(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    proc = start_cli(["convert", tiny_model_dir, "-o", out, "--components", "decoder"], tmp_path)
    wait_for(lambda: any(tmp_path.glob(".out.partial-*")), proc, "the partial folder exists")
    proc.kill()
    proc.communicate(timeout=60)
    partial = next(tmp_path.glob(".out.partial-*"))
    assert not out.exists()
    code, _, err = run_cli(["convert", str(tiny_model_dir), "-o", str(out), "--components", "decoder"], capsys)
    assert code == 0, err
    assert f"removed {partial}, left by process {proc.pid} that is no longer running" in err
    assert leftovers(tmp_path, "out") == [] and (out / "pipeline.json").is_file()


@pytest.mark.parametrize("command", ["verify", "generate"])
def test_sigint_during_verify_or_generate_exits_130(command, tiny_model_dir, converted, tmp_path):
    args = {"verify": ["verify", converted],
            "generate": ["generate", tiny_model_dir, "--prompt", "a fox", "--steps", "1000", "-o", tmp_path / "a.png"]}
    (tmp_path / "a.png").write_bytes(b"a previous image")
    proc = start_cli(args[command], tmp_path)
    wait_for(lambda: torch_loaded(proc.pid), proc, "torch is loaded")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    last = {"verify": "interrupted; nothing was written", "generate": f"interrupted; {tmp_path / 'a.png'} untouched"}
    assert err.strip().splitlines()[-1] == last[command] and "Traceback" not in err
    assert (tmp_path / "a.png").read_bytes() == b"a previous image" and not list(tmp_path.glob(".a.png*"))


# ---- output safety ---------------------------------------------------------------------------

@pytest.mark.slow
def test_full_disk_is_one_line_and_keeps_the_previous_out(tiny_model_dir, converted, mount_tmpfs, tmp_path,
                                                          monkeypatch, capsys):
    """A 3 MB tmpfs (the previous OUT takes 1.7 MB, the text encoder alone 3.2 MB); where mounting
    is not allowed, ENOSPC is raised where package files are written (a fake full disk)."""
    disk = mount_tmpfs("size=3m")
    if disk is None:
        import errno

        from snapfusion_coreml.convert import package

        def full(src, dst, *args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))

        monkeypatch.setattr(package.shutil, "copyfile", full)
        disk = tmp_path
    out = disk / "out"
    shutil.copytree(converted, out)
    before = tree_sha256(out)
    code, _, err = run_cli(["convert", str(tiny_model_dir), "-o", str(out), "--overwrite",
                            "--components", "text_encoder,decoder"], capsys)
    assert code == 2 and "Traceback" not in err
    [line] = error_lines(err)
    assert line.startswith(f"error: expected free space to write {out}, got a full disk (in {disk}/.out.partial-"), line
    assert tree_sha256(out) == before and leftovers(disk, "out") == []


def test_read_only_folder_fails_before_loading(tiny_model_dir, mount_tmpfs, capsys):
    disk = mount_tmpfs("size=1m,ro")
    if disk is None:
        pytest.skip("cannot mount a read-only tmpfs here (root ignores mode bits)")
    code, _, err = run_cli(["convert", str(tiny_model_dir), "-o", str(disk / "out")], capsys)
    assert code == 2 and error_lines(err) == [
        f'error: expected a writable folder for {disk / "out"}, got "Read-only file system" (in {disk}/.out.lock)']
    png = disk / "a.png"
    code, _, err = run_cli(["generate", str(tiny_model_dir), "--prompt", "a fox", "--steps", "1", "-o", str(png)], capsys)
    assert code == 2 and len(error_lines(err)) == 1 and "Traceback" not in err
    assert error_lines(err) == [f"error: expected a writable folder for {png}, got a read-only or inaccessible folder "
                                f"(in {disk})"]


@pytest.mark.parametrize("where", ["same", "inside", "around"])
def test_out_may_not_be_the_model(where, tiny_model_dir, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    before = tree_sha256(model)
    out = {"same": model, "inside": model / "coreml", "around": tmp_path}[where]
    code, _, err = run_cli(["convert", str(model), "-o", str(out), "--overwrite"], capsys)
    relation = {"same": "is", "inside": "lies inside", "around": "contains"}[where]
    assert code == 2 and error_lines(err) == [
        f"error: expected an output folder outside the input {model}, got {out}, which {relation} it"]
    assert tree_sha256(model) == before and not (model / "coreml").exists()


@pytest.mark.parametrize("command", ["eval", "train v-pred", "distill decoder", "export-blocks"])
def test_other_writers_may_not_replace_the_model(command, tiny_model_dir, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    before = tree_sha256(model)
    out = {"eval": model / "eval", "train v-pred": model, "distill decoder": tmp_path, "export-blocks": model}[command]
    extra = {"eval": ["--count", "2", "--guidance", "1"],  # where OUT is not refused, the run stays short
             "train v-pred": ["--data", "shapes", "--max-steps", "1", "--data-steps", "1"],
             "distill decoder": ["--prompts", str(model), "--max-steps", "1", "--sample-steps", "1"],
             "export-blocks": []}[command]
    code, _, err = run_cli([*command.split(), str(model), "-o", str(out), "--overwrite", *extra], capsys)
    relation = "lies inside" if out == model / "eval" else "is" if out == model else "contains"
    assert code == 2 and error_lines(err) == [
        f"error: expected an output folder outside the input {model}, got {out}, which {relation} it"], err
    assert tree_sha256(model) == before and not (model / "eval").exists()


def test_eval_may_not_replace_its_judge(tiny_model_dir, tmp_path, capsys):
    judge = tmp_path / "judge"
    judge.mkdir()
    (judge / "config.json").write_text("{}")
    code, _, err = run_cli(["eval", "run", str(tiny_model_dir), "-o", str(judge), "--judge", str(judge), "--overwrite",
                            "--count", "2", "--guidance", "1"], capsys)
    assert code == 2 and error_lines(err) == [
        f"error: expected an output folder outside the input {judge}, got {judge}, which is it"], err
    assert (judge / "config.json").read_text() == "{}"


@pytest.mark.slow
def test_second_writer_fails_fast_and_first_output_is_kept(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "o"
    lock = tmp_path / ".o.lock"
    proc = start_cli(["convert", tiny_model_dir, "-o", out, "--components", "decoder"], tmp_path)
    wait_for(lambda: lock.exists() and lock.read_text().strip() == str(proc.pid), proc, "the lock is held")
    start = time.monotonic()
    code, _, err = run_cli(["convert", str(tiny_model_dir), "-o", str(out), "--components", "decoder"], capsys)
    assert code == 2 and time.monotonic() - start < 5
    assert error_lines(err) == [f"error: expected no other process writing {out}, got process {proc.pid} "
                                f"holding its lock (in {lock})"]
    _, first_err = proc.communicate(timeout=180)
    assert proc.returncode == 0, first_err
    first = tree_sha256(out)
    code, _, err = run_cli(["convert", str(tiny_model_dir), "-o", str(out), "--components", "decoder"], capsys)
    assert code == 2 and "already exists; pass --overwrite" in err
    assert tree_sha256(out) == first and leftovers(tmp_path, "o") == []


def test_bracketed_path_is_printed_literally(converted, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "o [v1]"
    shutil.copytree(converted, out)
    code, _, err = run_cli(["convert", str(tiny_model_dir), "-o", str(out), "--components", "decoder"], capsys)
    assert code == 2 and error_lines(err) == [f"error: output folder {out} already exists; pass --overwrite to replace it"]
    code, stdout, _ = run_cli(["inspect", str(out)], capsys)
    assert code == 0 and str(out) in stdout


@pytest.mark.slow
def test_shape_mismatch_list_is_printed_literally(tiny_model_dir, tmp_path, capsys):
    """A decoder checkpoint written by safetensors itself with one tensor of the wrong shape: the
    error keeps its bracketed list of mismatches (rich markup would drop it)."""
    from safetensors.numpy import load_file, save_file

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    [weights] = (model / "vae_decoder").glob("*.safetensors")
    tensors = load_file(str(weights))
    name = sorted(k for k, v in tensors.items() if v.ndim == 4)[0]
    tensors[name] = tensors[name][:1]
    save_file(tensors, str(weights))
    out = tmp_path / "out"
    code, _, err = run_cli(["convert", str(model), "-o", str(out), "--components", "decoder"], capsys)
    assert code == 2 and "Traceback" not in err
    [line] = error_lines(err)
    assert f"shape mismatches [{name}: expected (" in line and "] (1) (in " in line and str(weights.parent) in line, line
    assert not out.exists() and leftovers(tmp_path, "out") == []


# ---- verify: declared shapes and dtypes --------------------------------------------------------

def test_verify_refuses_a_pipeline_json_with_wrong_shapes_or_dtypes(tiny_converted_dir, tmp_path, capsys):
    """Every component's packages are checked against pipeline.json: one wrong declaration in each
    of the three is named in the one error line."""
    folder = tmp_path / "wrong"
    shutil.copytree(tiny_converted_dir, folder)
    manifest = json.loads((folder / "pipeline.json").read_text())
    components = manifest["components"]
    text_in, unet_out, decoder_out = (components["text_encoder"]["inputs"][0], components["unet"]["outputs"][0],
                                      components["decoder"]["outputs"][0])
    true = {name: (tuple(t["shape"]), t["dtype"]) for name, t in
            (("text", text_in), ("unet", unet_out), ("decoder", decoder_out))}
    text_in["dtype"] = "float16" if text_in["dtype"] != "float16" else "int32"
    unet_out["shape"] = [7, *unet_out["shape"][1:]]
    decoder_out["shape"] = [1, 3, 999, 999]
    (folder / "pipeline.json").write_text(json.dumps(manifest))
    code, _, err = run_cli(["verify", str(folder)], capsys)
    assert code == 1 and "Traceback" not in err
    [line] = error_lines(err)
    files = {key: components[key]["chunks"] or [components[key]["file"]] for key in ("text_encoder", "unet", "decoder")}
    assert (f"{files['text_encoder'][0]} input {text_in['name']}: pipeline.json declares {true['text'][0]} "
            f"{text_in['dtype']}, the package takes {true['text'][0]} {true['text'][1]}") in line, line
    assert (f"{files['unet'][-1]} output {unet_out['name']}: pipeline.json declares {tuple(unet_out['shape'])} "
            f"{true['unet'][1]}, the package returns {true['unet'][0]} {true['unet'][1]}") in line, line
    assert (f"{files['decoder'][-1]} output {decoder_out['name']}: pipeline.json declares (1, 3, 999, 999) "
            f"{true['decoder'][1]}, the package returns {true['decoder'][0]} {true['decoder'][1]}") in line, line


# ---- options checked before anything loads ---------------------------------------------------

_CHILD = """
import contextlib, io, json, sys
from snapfusion_coreml.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    sys.argv = ["snapfusion-coreml", *argv]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
    results.append({"code": code, "out": out.getvalue(), "err": err.getvalue()})
print(json.dumps({"results": results, "torch": "torch" in sys.modules}))
"""


@pytest.mark.slow
def test_bad_options_fail_before_torch_is_imported(tiny_model_dir, converted, tmp_path):
    """One child process runs every case; torch is never imported, so each fails in well under a second."""
    model, png = str(tiny_model_dir), str(tmp_path / "x.png")
    (tmp_path / "x.png").write_bytes(b"an existing output")
    cases = [
        (["--version"], 0, f"snapfusion-coreml {__version__}"),
        (["--help"], 0, "Usage: snapfusion-coreml"),
        (["generate", "--help"], 0, "[default: the model's]"),
        (["convert", "--help"], 0, "[default: kmeans]"),  # typer's own defaults survive too (--palettize-mode)
        ([], 2, "Usage: snapfusion-coreml [OPTIONS] COMMAND"),
        (["generate", model, "--prompt", "x", "-o", png, "--steps", "0"], 2, "error: expected --steps >= 1, got 0"),
        (["generate", model, "--prompt", "x", "-o", png, "--steps", "1001"], 2,
         f"error: expected --steps <= 1000 (the noise schedule's num_train_timesteps), got 1001 "
         f"(in {tiny_model_dir / 'scheduler' / 'scheduler_config.json'})"),
        (["generate", str(converted), "--prompt", "x", "-o", png, "--steps", "1001"], 2,
         f"error: expected --steps <= 1000 (the noise schedule's num_train_timesteps), got 1001 "
         f"(in {converted / 'pipeline.json'})"),
        (["generate", model, "--prompt", "x", "-o", png, "--seed", str(2**70)], 2,
         f"error: expected --seed in 0..{2**64 - 1} (2**64-1), got {2**70}"),
        (["generate", model, "--prompt", "x", "-o", png, "--seed", "-1"], 2, "error: expected --seed in 0.."),
        (["generate", model, "--prompt", "x", "-o", png, "--guidance", "inf"], 2,
         "error: expected a finite number for --guidance, got inf"),
        (["verify", str(converted), "--min-psnr", "nan"], 2, "error: expected a finite number for --min-psnr, got nan"),
        (["verify", str(converted), "--min-psnr", "inf"], 2, "error: expected a finite number for --min-psnr, got inf"),
        (["convert", "nothere/model", "-o", str(tmp_path / "o")], 2,
         "error: model folder not found: nothere/model (for a hub id not downloaded yet, write hf:nothere/model)"),
        (["convert", model, "-o", str(converted)], 2, f"error: output folder {converted} already exists"),
        (["latency", "estimate", "--layout", "snapfusion", "--steps", "0"], 2, "error: expected --steps >= 1, got 0"),
        (["latency", "estimate", "--layout", "snapfusion", "--image-size", "0"], 2,
         "error: expected --image-size >= 1, got 0"),
        (["latency", "estimate", "--layout", "snapfusion", "--image-size", "100"], 2,
         "error: expected an image size whose sides are positive multiples of 64 for this UNet"),
        (["latency", "estimate", model, "--image-size", "72"], 2,
         "error: expected an image size whose sides are positive multiples of 16 for this UNet"),
        (["convert", model, "-o", str(tmp_path / "o"), "--image-size", "0"], 2,
         "error: expected --image-size sides > 0, got '0'"),
        (["convert", model, "-o", str(tmp_path / "o"), "--image-size", "64x0"], 2,
         "error: expected --image-size sides > 0, got '64x0'"),
        (["convert", model, "-o", str(tmp_path / "o"), "--image-size", "100"], 2,
         "error: expected an image size whose sides are positive multiples of 16 for this UNet (2 resolution levels"),
        (["convert", model, "-o", str(tmp_path / "o"), "--layout", "snapfusion", "--image-size", "512x480"], 2,
         "error: expected an image size whose sides are positive multiples of 64 for this UNet"),
        (["generate", model, "--prompt", "x", "-o", png, "--image-size", "64x72"], 2,
         "error: expected an image size whose sides are positive multiples of 16 for this UNet"),
        (["convert", model, "-o", str(tmp_path / "o"), "--unet-batch", "3"], 2, "error: expected --unet-batch 1 or 2, got 3"),
        (["convert", model, "-o", str(tmp_path / "o"), "--palettize", "7"], 2,
         "error: expected --palettize none, 4, 6, 8 or mixed:BITS, got '7'"),
        (["convert", model, "-o", str(tmp_path / "o"), "--palettize", "vae=6"], 2,
         "error: expected --palettize COMPONENT=SPEC with COMPONENT from text_encoder, unet, decoder, encoder, got 'vae=6'"),
        (["convert", model, "-o", str(tmp_path / "o"), "--components", "unet,vae"], 2,
         "error: expected --components from text_encoder,unet,decoder,encoder, got unet,vae"),
        (["convert", model, "-o", str(tmp_path / "o"), "--components", "unet", "--palettize", "text_encoder=8"], 2,
         "error: expected --palettize to name converted components, got text_encoder (--components unet)"),
        (["convert", model, "-o", str(tmp_path / "o"), "--lora", str(tmp_path / "style.safetensors")], 2,
         f"error: LoRA file not found: {tmp_path / 'style.safetensors'}"),
        (["convert", model, "-o", str(tmp_path / "o"), "--lora", f"{png}:0.5"], 2,
         "error: expected a .safetensors LoRA file, got x.png"),
        (["generate", model, "--prompt", "x", "-o", png, "--image-size", "0"], 2,
         "error: expected --image-size sides > 0, got '0'"),
        (["eval", model, "-o", str(tmp_path / "e"), "--steps", "0"], 2, "error: expected --steps >= 1, got 0"),
        (["eval", model, "-o", str(tmp_path / "e"), "--seed", str(2**64)], 2, "error: expected --seed in 0.."),
        (["eval", model, "-o", str(tmp_path / "e"), "--guidance", "1,nan"], 2,
         "error: expected a finite number for --guidance, got nan"),
        (["eval", model, "-o", str(tmp_path / "e"), "--count", "1"], 2, "error: expected --count >= 2, got 1"),
        (["eval", model, "-o", str(tmp_path / "e"), "--seed", str(2**64 - 2), "--count", "3"], 2,
         f"error: expected --seed + --count - 1 <= {2**64 - 1} (2**64-1), got {2**64}"),
        (["eval", model, "-o", str(tmp_path / "e"), "--precision", "fp8"], 2,
         "error: expected --precision fp16 or fp32, got 'fp8'"),
        (["eval", "train-judge", "-o", str(tmp_path / "j"), "--held-out-seed", "-1"], 2,
         "error: expected --held-out-seed in 0.."),
        (["train", "v-pred", model, "--data", model, "-o", str(tmp_path / "t"), "--seed", str(2**64)], 2,
         "error: expected --seed in 0.."),
        (["train", "v-pred", model, "--data", model, "-o", str(tmp_path / "t"), "--caption-dropout", "nan"], 2,
         "error: expected a finite number for --caption-dropout, got nan"),
        (["distill", "steps", model, "--data", model, "-o", str(tmp_path / "t"), "--gamma", "nan"], 2,
         "error: expected a finite number for --gamma, got nan"),
        (["distill", "decoder", model, "--prompts", model, "-o", str(tmp_path / "t"), "--sample-steps", "0"], 2,
         "error: expected --sample-steps >= 1, got 0"),
        (["train", "latents", model, "--data", "shapes", "-o", str(tmp_path / "t"), "--image-size", "0"], 2,
         "error: expected --image-size >= 1, got 0"),
        (["evolve", model, "--data", model, "-o", str(tmp_path / "t"), "--latency-target-ms", "inf"], 2,
         "error: expected a finite number for --latency-target-ms, got inf"),
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps([argv for argv, _, _ in cases])], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for (argv, code, text), got in zip(cases, report["results"]):
        assert got["code"] == code, (argv, got)
        assert text in got["out"] + got["err"], (argv, got)
        if text.startswith("error:"):
            assert len(got["err"].strip().splitlines()) == 1 and "Traceback" not in got["err"], (argv, got)
    assert report["torch"] is False
    assert (tmp_path / "x.png").read_bytes() == b"an existing output"
    assert not any((tmp_path / name).exists() for name in ("o", "e", "j", "t"))


# ---- output for scripts ----------------------------------------------------------------------

@pytest.mark.slow
def test_non_terminal_output_is_not_cut_and_json_is_strict(converted, tmp_path, capsys):
    deep = tmp_path / ("a_long_folder_name_" * 4) / "decoder [fp16]"
    shutil.copytree(converted, deep)
    code, stdout, err = run_cli(["verify", str(deep), "--modes", "fp32"], capsys)
    assert code == 0, err
    assert str(deep) in stdout and "…" not in stdout and max(map(len, stdout.splitlines())) > 80
    code, stdout, _ = run_cli(["verify", str(deep), "--modes", "fp32", "--json"], capsys)
    assert code == 0 and json.loads(stdout)["folder"] == str(deep)
    code, stdout, _ = run_cli(["latency", "estimate", "--layout", "snapfusion", "--json"], capsys)
    assert code == 0 and json.loads(stdout)["estimated"] is True


def test_json_ready_turns_non_finite_numbers_into_null():
    from snapfusion_coreml.cli.options import json_ready

    text = json.dumps(json_ready({"psnr": float("nan"), "rows": [float("inf"), 1.5], "path": Path("a [b]")}),
                      allow_nan=False)
    assert json.loads(text) == {"psnr": None, "rows": [None, 1.5], "path": "a [b]"}


@pytest.mark.slow
def test_third_party_log_lines_only_with_verbose(tiny_model_dir, tmp_path):
    runs = {}
    for flags in ([], ["--verbose"]):
        proc = start_cli([*flags, "convert", tiny_model_dir, "-o", tmp_path / f"o{len(flags)}",
                          "--components", "text_encoder", "--json"], tmp_path)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert json.loads(out)["components"][0]["component"] == "text_encoder"
        runs[bool(flags)] = err
    assert [line for line in runs[False].splitlines() if line.strip() and not line.strip().startswith("convert")] == []
    assert "[transformers]" in runs[True] and "coremltools" in runs[True]


# ---- reproducible conversion -----------------------------------------------------------------

@pytest.mark.slow
def test_converting_twice_gives_identical_bytes(tiny_model_dir, tmp_path, capsys):
    """Run a: in this process. Run b: a child process with another hash seed, converting a copy of
    the model at another path. Every package byte is the same; pipeline.json differs only in the
    source path it records."""
    args = ["--components", "text_encoder,decoder", "--palettize", "decoder=8"]
    code, _, err = run_cli(["convert", str(tiny_model_dir), "-o", str(tmp_path / "a"), *args], capsys)
    assert code == 0, err
    moved = tmp_path / "elsewhere" / "model copy"
    shutil.copytree(tiny_model_dir, moved)
    proc = start_cli(["convert", moved, "-o", tmp_path / "b", *args], tmp_path, PYTHONHASHSEED="12345")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    files = {name: sorted(p.relative_to(tmp_path / name) for p in (tmp_path / name).rglob("*") if p.is_file())
             for name in ("a", "b")}
    assert files["a"] == files["b"] and len(files["a"]) >= 8
    for rel in files["a"]:
        if rel != Path("pipeline.json"):
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    manifests = {name: json.loads((tmp_path / name / "pipeline.json").read_text()) for name in ("a", "b")}
    assert (manifests["a"]["source"].pop("model"), manifests["b"]["source"].pop("model")) == (str(tiny_model_dir), str(moved))
    assert manifests["a"] == manifests["b"] and manifests["a"]["components"]["decoder"]["compression"]["bits"] == 8
    for package in (tmp_path / "a").glob("*.mlpackage"):
        for path in package.rglob("*"):
            if path.is_file():
                data = path.read_bytes().decode("latin-1")
                assert str(tiny_model_dir) not in data and str(tmp_path) not in data and "conversion_date" not in data, path
        manifest = json.loads((package / "Manifest.json").read_text())
        assert manifest["rootModelIdentifier"] in manifest["itemInfoEntries"]
