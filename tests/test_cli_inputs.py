"""What the user owns is never deleted or changed, and every malformed input is one line with exit 2
(README "Exit codes and scripting"). Each case runs the CLI as a hostile CI job would, then checks
the exit code, the one error line, and that every input file is byte-identical afterwards."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from cli_runner import run_cli
from snapfusion_coreml.digests import tree_sha256

REPO = Path(__file__).resolve().parents[1]
DEEP = '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"  # nested beyond any parser's recursion limit


# ---- helpers -------------------------------------------------------------------------------

def snapshot(*paths: Path) -> dict[str, str]:
    """sha256 of every input file or folder (and every file in it), to compare after a run."""
    return {str(p): tree_sha256(p) for p in paths}


def one_error(err: str) -> str:
    """The single error line of a failed run (and nothing that looks like a traceback)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def child(args: list, cwd: Path) -> subprocess.CompletedProcess:
    """The CLI in a child process (bytes arguments pass as they are, like a shell's)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), TQDM_DISABLE="1")
    return subprocess.run([sys.executable, "-m", "snapfusion_coreml", *args], cwd=cwd, env=env,
                          capture_output=True, timeout=600)


def unet_linear(model: Path) -> tuple[str, int, int]:
    """(module, out, in) of the first Linear layer of the model's UNet checkpoint."""
    [weights] = (model / "unet").glob("*.safetensors")
    state = load_file(str(weights))
    key = sorted(k for k, v in state.items() if k.endswith(".weight") and v.dim() == 2)[0]
    out, cin = state[key].shape
    return key[: -len(".weight")], out, cin


def write_lora(path: Path, model: Path, rank: int = 2, down=None, up=None, alpha=None, metadata=None) -> Path:
    """A diffusers/peft LoRA file for one UNet Linear of `model`, with any tensor replaced."""
    module, out, cin = unet_linear(model)
    tensors = {f"unet.{module}.lora_A.weight": torch.full((rank, cin), 0.01) if down is None else down,
               f"unet.{module}.lora_B.weight": torch.full((out, rank), 0.01) if up is None else up}
    if alpha is not None:
        tensors[f"unet.{module}.alpha"] = alpha
    save_file(tensors, str(path), metadata=metadata)
    return path


@pytest.fixture
def model(tiny_model_dir, tmp_path) -> Path:
    """A copy of the tiny model, so a test may break it."""
    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    return copy


@pytest.fixture
def folder(tiny_converted_dir, tmp_path) -> Path:
    """A copy of the tiny converted folder, so a test may break it."""
    copy = tmp_path / "converted"
    shutil.copytree(tiny_converted_dir, copy)
    return copy


# ---- 1. --overwrite never deletes an input ---------------------------------------------------

def test_convert_out_holding_a_lora_is_refused(tiny_model_dir, tmp_path, capsys):
    d = tmp_path / "d"
    d.mkdir()
    lora = write_lora(d / "x.safetensors", tiny_model_dir)
    (d / "notes.txt").write_text("the user's notes beside the LoRA")
    before = snapshot(d)
    code, _, err = run_cli(["convert", str(tiny_model_dir), "--lora", f"{lora}:0.5", "-o", str(d), "--overwrite",
                            "--components", "decoder"], capsys)
    assert code == 2
    assert one_error(err) == f"error: expected an output folder outside the input {lora}, got {d}, which contains it"
    assert snapshot(d) == before


def test_convert_out_that_is_the_base_folder_is_refused(tmp_path, capsys):
    base = tmp_path / "B"
    (base / "unet").mkdir(parents=True)
    (base / "unet" / "config.json").write_text("{}")
    checkpoint = tmp_path / "file.safetensors"
    save_file({"x": torch.zeros(1)}, str(checkpoint))
    before = snapshot(base, checkpoint)
    code, _, err = run_cli(["convert", str(checkpoint), "--base", str(base), "-o", str(base), "--overwrite"], capsys)
    assert code == 2
    assert one_error(err) == f"error: expected an output folder outside the input {base}, got {base}, which is it"
    assert snapshot(base, checkpoint) == before


def _images(folder: Path) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(2):
        Image.new("RGB", (16, 16), (40 * i, 80, 120)).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text(f"picture {i}\n")
    return folder


@pytest.mark.parametrize("case", ["autoencoder data", "base vae", "latents data", "v-pred run dir", "distill prompts",
                                  "evolve latency table", "out through a link", "eval prompts", "eval reference"])
def test_every_writer_refuses_an_out_that_is_or_holds_an_input(case, tiny_model_dir, tmp_path, capsys):
    """Each input option of each writing command, through the one check every output passes."""
    data = _images(tmp_path / "D")
    prompts = tmp_path / "P"
    prompts.mkdir()
    (prompts / "prompts.txt").write_text("a red circle\na blue square\n")
    table = tmp_path / "T"
    table.mkdir()
    (table / "latency.json").write_text("{}")
    link = tmp_path / "link"
    link.symlink_to(data, target_is_directory=True)
    model = str(tiny_model_dir)
    argv, given, out, relation = {
        "autoencoder data": (["train", "autoencoder", "--data", str(data), "-o", str(data)], data, data, "is"),
        "base vae": (["train", "base", "--data", "shapes", "--vae", str(data), "-o", str(data)], data, data, "is"),
        "latents data": (["train", "latents", model, "--data", str(data), "-o", str(data)], data, data, "is"),
        "v-pred run dir": (["train", "v-pred", model, "--data", str(data), "-o", str(tmp_path / "o"),
                            "--run-dir", str(data)], data, data, "is"),
        "distill prompts": (["distill", "decoder", model, "--prompts", str(prompts / "prompts.txt"), "-o", str(prompts)],
                            prompts / "prompts.txt", prompts, "contains"),
        "evolve latency table": (["evolve", model, "--data", "shapes", "--latency-target-ms", "1", "--latency-table",
                                  str(table / "latency.json"), "-o", str(table)], table / "latency.json", table, "contains"),
        "out through a link": (["train", "autoencoder", "--data", str(data), "-o", str(link)], data, link, "is"),
        "eval prompts": (["eval", model, "--prompts", str(prompts / "prompts.txt"), "-o", str(prompts)],
                         prompts / "prompts.txt", prompts, "contains"),
        "eval reference": (["eval", model, "--reference", str(data), "-o", str(data / "eval")], data, data / "eval",
                           "lies inside"),
    }[case]
    before = snapshot(data, prompts, table)
    code, _, err = run_cli([*argv, "--overwrite"], capsys)
    assert code == 2
    what = "a run folder" if case == "v-pred run dir" else "an output folder"
    assert one_error(err) == f"error: expected {what} outside the input {given}, got {out}, which {relation} it"
    assert snapshot(data, prompts, table) == before and not (tmp_path / "o").exists()


def test_a_new_option_is_an_input_without_declaring_it(tmp_path, capsys):
    """The check lives where every command passes: a command added tomorrow, with an option no
    list names, is protected as it is."""
    import typer

    from snapfusion_coreml.cli import app
    from snapfusion_coreml.io import claim_output

    def writer(out: Path = typer.Option(..., "-o"), style: str = typer.Option(..., "--style"),
               extras: list[Path] = typer.Option([], "--extra")) -> None:
        with claim_output(out, overwrite=True):
            pass

    d = tmp_path / "d"
    d.mkdir()
    (d / "style.bin").write_bytes(b"the user's file")
    app.command("tomorrows-writer")(writer)
    try:
        for argv, given in ((["--style", str(d / "style.bin")], d / "style.bin"),
                            (["--style", "plain words", "--extra", str(d)], d)):
            code, _, err = run_cli(["tomorrows-writer", *argv, "-o", str(d)], capsys)
            assert code == 2
            relation = "contains" if given != d else "is"
            assert one_error(err) == f"error: expected an output folder outside the input {given}, got {d}, which {relation} it"
    finally:
        app.registered_commands.pop()
    assert (d / "style.bin").read_bytes() == b"the user's file"


@pytest.mark.parametrize("command", ["generate", "generate init image", "latency", "report"])
def test_output_files_may_not_replace_an_input(command, tiny_model_dir, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    start = _images(tmp_path / "D") / "0.png"
    bench = tmp_path / "bench"
    bench.mkdir()
    shutil.copy(REPO / "tests" / "golden" / "swift" / "benchmark.json", bench / "report.md")  # named like the output
    argv, out, given, relation = {
        "generate": (["generate", str(model), "--prompt", "x", "-o", str(model / "unet" / "x.png")],
                     model / "unet" / "x.png", model, "lies inside"),
        "generate init image": (["generate", str(model), "--prompt", "x", "--init-image", str(start), "-o", str(start)],
                                start, start, "is"),
        "latency": (["latency", "estimate", str(model), "--out", str(model / "snapfusion.json")],
                    model / "snapfusion.json", model, "lies inside"),
        "report": (["report", str(bench / "report.md"), "-o", str(bench)], bench / "report.md", bench / "report.md", "is"),
    }[command]
    before = snapshot(model, bench, start.parent)
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    assert one_error(err) == f"error: expected an output file outside the input {given}, got {out}, which {relation} it"
    assert snapshot(model, bench, start.parent) == before and not (model / "unet" / "x.png").exists()


# ---- 2. no write through a link we did not make ---------------------------------------------

def test_generate_never_writes_through_a_link_at_a_temporary_name(tiny_model_dir, tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("not yours")
    (tmp_path / ".x.png.partial").symlink_to(victim)
    code, _, err = run_cli(["generate", str(tiny_model_dir), "--prompt", "a fox", "--steps", "1", "-o",
                            str(tmp_path / "x.png")], capsys)
    assert code == 0, err
    assert victim.read_text() == "not yours"
    assert (tmp_path / "x.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".x.png.partial", "victim.txt", "x.png"]


def test_json_writes_never_follow_a_link_at_a_temporary_name(tmp_path):
    from snapfusion_coreml.io import write_json

    victim = tmp_path / "victim.txt"
    victim.write_text("not yours")
    (tmp_path / ".a.json.partial").symlink_to(victim)
    write_json(tmp_path / "a.json", {"ok": True})
    assert victim.read_text() == "not yours" and json.loads((tmp_path / "a.json").read_text()) == {"ok": True}
    assert oct((tmp_path / "a.json").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def test_atomic_file_fills_a_hidden_sibling_and_leaves_nothing_on_failure(tmp_path):
    """io.atomic_file, the one writer of output files: `.NAME.XXXXXXXX.partial` beside the file,
    a new file's mode on success; on failure the previous file stays and no temporary is left."""
    import re

    from snapfusion_coreml.io import atomic_file

    target = tmp_path / "deep" / "a.bin"
    with atomic_file(target) as tmp:
        assert tmp.parent == target.parent and re.fullmatch(r"\.a\.bin\.\w{8}\.partial", tmp.name), tmp.name
        tmp.write_bytes(b"good")
    assert target.read_bytes() == b"good" and oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("the writer failed")
    assert target.read_bytes() == b"good" and sorted(p.name for p in target.parent.iterdir()) == ["a.bin"]


def test_weights_are_written_atomically(tmp_path, monkeypatch):
    """modeling.checkpoint.save_weights goes through io.atomic_file: a failing save keeps the
    previous weights and leaves no partial file."""
    import safetensors.torch

    from snapfusion_coreml.modeling.checkpoint import save_weights

    path = tmp_path / "model.safetensors"
    save_weights(torch.nn.Linear(2, 2), path)
    before = path.read_bytes()

    def full_disk(state, name):
        Path(name).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(OSError):
        save_weights(torch.nn.Linear(2, 2), path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_link_at_the_lock_name_is_refused(tiny_model_dir, tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("not yours")
    (tmp_path / ".out.lock").symlink_to(victim)
    code, _, err = run_cli(["convert", str(tiny_model_dir), "-o", str(tmp_path / "out"), "--components", "decoder"],
                           capsys)
    assert code == 2
    assert one_error(err) == (f"error: expected a lock file of our own, got a symbolic link (in {tmp_path / '.out.lock'}); "
                              f"remove it if no other process writes {tmp_path / 'out'}")
    assert victim.read_text() == "not yours" and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_out_that_is_a_link_replaces_the_folder_it_points_to(tiny_model_dir, tmp_path, capsys):
    real = tmp_path / "real"
    real.mkdir()
    (real / "old.txt").write_text("the previous output")
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    code, _, err = run_cli(["convert", str(tiny_model_dir), "-o", str(link), "--overwrite", "--components", "decoder"],
                           capsys)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert (real / "pipeline.json").is_file() and not (real / "old.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]  # no .link.old-PID, no .real.*


def test_a_leftover_link_is_removed_not_followed(tmp_path, capsys):
    """Older versions left `.OUT.old-PID` links behind; the next writer removes the link itself."""
    from snapfusion_coreml.io import atomic_directory

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "f").write_text("keep")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = tmp_path / f".out.old-{int(dead.stdout)}"
    leftover.symlink_to(precious, target_is_directory=True)
    (tmp_path / "out").mkdir()
    with atomic_directory(tmp_path / "out", overwrite=True) as tmp:
        (tmp / "new").write_text("new")
    assert f"removed {leftover}" in capsys.readouterr().err
    assert not leftover.is_symlink() and (precious / "f").read_text() == "keep"


# ---- 3. one line, exit 2, for every malformed input -------------------------------------------

LORA_CASES = {  # name -> (write_lora arguments, the error line's text after "error: ")
    "rank 0": (dict(rank=0), "down of shape (rank >= 1, in, ...), got (0, "),
    "1-D": (dict(down=torch.zeros(32)), "down of shape (rank >= 1, in, ...), got (32,)"),
    "0-d": (dict(down=torch.tensor(1.0)), "down of shape (rank >= 1, in, ...), got ()"),
    "vector alpha": (dict(alpha=torch.ones(3)), "alpha as one number, got a tensor of shape (3,)"),
    "NaN alpha": (dict(alpha=torch.tensor(float("nan"))), "expected finite LoRA values, got NaN or infinity in the alpha tensor"),
    "NaN values": (dict(up=None, down=torch.full((2, 1), float("nan"))), "expected finite LoRA values, got NaN or infinity in the down tensor"),
    "metadata not an object": (dict(metadata={"lora_adapter_metadata": "[1, 2]"}),
                               "expected a JSON object in the lora_adapter_metadata header entry, got list"),
    "metadata not numeric": (dict(metadata={"lora_adapter_metadata": '{"unet.lora_alpha": "big"}'}),
                             "expected lora_adapter_metadata unet.lora_alpha as a finite number, got 'big'"),
    "metadata nested": (dict(metadata={"lora_adapter_metadata": DEEP}), "expected a flat JSON object in the lora_adapter_metadata"),
    "bad alpha_pattern": (dict(metadata={"lora_adapter_metadata": '{"unet.r": 2, "unet.alpha_pattern": {"(": 4}}'}),
                          "expected lora_adapter_metadata unet.alpha_pattern keys as regular expressions, got '('"),
}


@pytest.mark.parametrize("case", list(LORA_CASES))
def test_malformed_lora_files_are_one_line(case, tiny_model_dir, tmp_path, capsys):
    arguments, text = LORA_CASES[case]
    if case == "NaN values":  # a down projection that fits the module, holding NaN
        _, _, cin = unet_linear(tiny_model_dir)
        arguments = dict(down=torch.full((2, cin), float("nan")))
    lora = write_lora(tmp_path / "style.safetensors", tiny_model_dir, **arguments)
    before = snapshot(lora, tiny_model_dir)
    out = tmp_path / "out"
    code, _, err = run_cli(["convert", str(tiny_model_dir), "-o", str(out), "--lora", str(lora),
                            "--components", "unet"], capsys)
    assert code == 2
    line = one_error(err)
    assert text in line and line.endswith(f"(in {lora})"), line
    assert snapshot(lora, tiny_model_dir) == before and not out.exists() and not list(tmp_path.glob(".out.*"))


def test_a_lora_scale_that_overflows_float16_is_refused_at_convert(tiny_model_dir, tmp_path, capsys):
    """The package stores float16 weights: a merge beyond 65504 would be infinity there."""
    lora = write_lora(tmp_path / "style.safetensors", tiny_model_dir)
    module, _, _ = unet_linear(tiny_model_dir)
    out = tmp_path / "out"
    code, _, err = run_cli(["convert", str(tiny_model_dir), "-o", str(out), "--lora", f"{lora}:1e9",
                            "--components", "unet"], capsys)
    assert code == 2
    line = one_error(err)
    assert line.startswith(f"error: expected weights within float16 range (|w| <= 65504) after merging LoRA "
                           f"'unet.{module}.lora_A.weight' at scale 1e+09, got |w| = ") and line.endswith(f"(in {lora})")
    assert not out.exists()


@pytest.mark.parametrize("where", ["model_index.json", "layout", "pipeline.json"])
@pytest.mark.slow
def test_deeply_nested_json_is_one_line_in_every_reader(where, model, folder, tmp_path, capsys):
    if where == "model_index.json":
        (model / "model_index.json").write_text(DEEP)
        runs = [(["convert", str(model), "-o", str(tmp_path / "o")], model / "model_index.json"),
                (["export-blocks", str(model), "-o", str(tmp_path / "o")], model / "model_index.json"),
                (["generate", str(model), "--prompt", "x", "-o", str(tmp_path / "x.png")], model / "model_index.json")]
    elif where == "layout":
        layout = tmp_path / "layout.json"
        layout.write_text(DEEP)
        runs = [(["convert", str(model), "--layout", str(layout), "-o", str(tmp_path / "o")], layout),
                (["latency", "estimate", "--layout", str(layout)], layout)]
    else:
        (folder / "pipeline.json").write_text(DEEP)
        runs = [([command, str(folder)], folder / "pipeline.json") for command in ("inspect", "verify")]
        runs += [(["generate", str(folder), "--prompt", "x", "-o", str(tmp_path / "x.png")], folder / "pipeline.json"),
                 (["eval", str(folder), "-o", str(tmp_path / "o"), "--count", "2"], folder / "pipeline.json")]
    before = snapshot(model, folder)
    for argv, file in runs:
        code, _, err = run_cli(argv, capsys)
        assert code == 2, (argv, err)
        line = one_error(err)
        assert "nested at most 32 levels deep, got deeper nesting" in line and line.endswith(f"(in {file})"), (argv, line)
    assert snapshot(model, folder) == before and not (tmp_path / "o").exists() and not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("edit, text", [
    (lambda c: c.update(widths=[]), "expected config.widths as a non-empty list of integers >= 1, got a list []"),
    (lambda c: c.update(widths="abc"), "expected config.widths as a list, got a string 'abc'"),
    (lambda c: c.update(input_size=2), "expected config.input_size as an integer >= 8, got a number 2"),
    (lambda c: c.update(feature_dim=-1), "expected config.feature_dim as an integer >= 1, got a number -1"),
    (lambda c: c.update(shapes=["circle", "circle"]), "expected config.shapes as a non-empty list of distinct names, got a list ['circle', 'circle']"),
])
def test_bad_judge_config_values_are_one_line(edit, text, tiny_model_dir, tmp_path, capsys):
    judge = tmp_path / "judge"
    shutil.copytree(REPO / "models" / "judge", judge)
    record = json.loads((judge / "judge.json").read_text())
    edit(record["config"])
    (judge / "judge.json").write_text(json.dumps(record))
    before = snapshot(judge)
    code, _, err = run_cli(["eval", str(tiny_model_dir), "--judge", str(judge), "-o", str(tmp_path / "e"),
                            "--count", "2", "--guidance", "1", "--steps", "1"], capsys)
    assert code == 2
    assert one_error(err) == f"error: {text} (in {judge / 'judge.json'})"
    assert snapshot(judge) == before and not (tmp_path / "e").exists()


def test_a_prompt_that_is_not_utf8_is_one_line(tiny_model_dir, tmp_path):
    done = child(["generate", str(tiny_model_dir), "--prompt", b"a \xff fox", "-o", str(tmp_path / "x.png")], tmp_path)
    assert done.returncode == 2
    assert one_error(done.stderr.decode()) == "error: expected --prompt as UTF-8 text, got bytes that are not UTF-8 at character 2"
    assert not (tmp_path / "x.png").exists()


def test_a_caption_that_is_not_utf8_is_one_line(tmp_path, capsys):
    data = _images(tmp_path / "D")
    (data / "1.txt").write_bytes(b"caf\xe9\n")
    before = snapshot(data)
    code, _, err = run_cli(["train", "autoencoder", "--data", str(data), "-o", str(tmp_path / "vae"), "--max-steps", "1"],
                           capsys)
    assert code == 2
    assert one_error(err) == f"error: expected a UTF-8 caption, got bytes that are not UTF-8 (in {data / '1.txt'})"
    assert snapshot(data) == before and not (tmp_path / "vae").exists()


@pytest.mark.slow
def test_verify_of_a_package_whose_data_folder_is_a_symlink_loop(folder, capsys):
    package = folder / "VAEDecoder.mlpackage"
    shutil.rmtree(package / "Data")
    (package / "Data").symlink_to(package / "Data")
    manifest = json.loads((package / "Manifest.json").read_text())
    spec = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]["path"]
    before = snapshot(folder / "pipeline.json", package / "Manifest.json")
    for argv in (["verify", str(folder), "--modes", "fp32"], ["inspect", str(folder)]):
        code, _, err = run_cli(argv, capsys)
        assert code == 2, (argv, err)
        assert one_error(err) == f'error: expected the model spec {spec}, got "Symlink loop from \'{package / "Data"}\'" (in {package})'
    assert snapshot(folder / "pipeline.json", package / "Manifest.json") == before


# ---- 4. no silent garbage ----------------------------------------------------------------------

@pytest.mark.parametrize("edit, text", [
    (lambda d: d["guidance"].update(default_scale=float("nan")), "expected guidance.default_scale as a finite number, got a number nan"),
    (lambda d: d["latent"].update(scale_factor=0), "expected latent.scale_factor as a number > 0, got a number 0"),
    (lambda d: d["noise_schedule"].update(beta_end=1.5), "expected noise_schedule.beta_end as a number in (0, 1), got a number 1.5"),
    (lambda d: d["components"]["decoder"].update(file="../VAEDecoder.mlpackage"),
     "expected components.decoder.file as a file name inside the folder (no / or \\, not . or ..), got a string '../VAEDecoder.mlpackage'"),
])
def test_generate_out_refuses_impossible_pipeline_json_values(edit, text, folder, tmp_path, capsys):
    """The rules the Swift reader applies too (tests/golden/pipelines.json), checked before any package loads."""
    data = json.loads((folder / "pipeline.json").read_text())
    edit(data)
    (folder / "pipeline.json").write_text(json.dumps(data))  # Python writes NaN as the bare word NaN
    before = snapshot(folder)
    for argv in (["generate", str(folder), "--prompt", "x", "-o", str(tmp_path / "x.png")], ["inspect", str(folder)]):
        code, _, err = run_cli(argv, capsys)
        assert code == 2
        assert one_error(err) == f"error: {text} (in {folder / 'pipeline.json'})"
    assert snapshot(folder) == before and not (tmp_path / "x.png").exists()


def test_generate_out_refuses_packages_changed_after_convert(folder, tmp_path, capsys):
    [weights] = (folder / "VAEDecoder.mlpackage").rglob("weight.bin")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    before = snapshot(folder)
    code, _, err = run_cli(["generate", str(folder), "--prompt", "x", "-o", str(tmp_path / "x.png")], capsys)
    assert code == 2
    assert one_error(err) == ("error: expected VAEDecoder.mlpackage with the sha256 recorded in pipeline.json, got other "
                              f"contents (changed after convert; `verify` compares every output) (in {folder})")
    assert snapshot(folder) == before and not (tmp_path / "x.png").exists()


# ---- 5. temporaries, recorded paths, read-only commands, early checks ------------------------------

@pytest.mark.slow
def test_temporaries_of_a_killed_run_are_removed_by_the_next(tiny_model_dir, tmp_path, capsys):
    import tempfile

    env = dict(os.environ, PYTHONPATH=str(REPO), TQDM_DISABLE="1")
    proc = subprocess.Popen([sys.executable, "-m", "snapfusion_coreml", "convert", str(tiny_model_dir), "-o",
                             str(tmp_path / "out"), "--components", "text_encoder"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    system = Path(tempfile.gettempdir())
    mine = []
    for _ in range(6000):
        mine = list(system.glob(f"snapfusion-coreml-{proc.pid}-*"))
        if mine and any(tmp_path.glob(".out.partial-*")) or proc.poll() is not None:
            break
        subprocess.run(["sleep", "0.05"])
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert mine and mine[0].is_dir()
    code, _, err = run_cli(["--version"], capsys)
    assert code == 0
    assert f"removed {mine[0]}, temporary files of process {proc.pid} that is no longer running" in err
    assert not mine[0].exists()


@pytest.mark.slow
def test_verify_finds_the_model_from_another_folder(tiny_model_dir, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(tiny_model_dir, work / "model")
    done = child(["convert", "model", "-o", "out", "--components", "decoder"], work)
    assert done.returncode == 0, done.stderr
    recorded = json.loads((work / "out" / "pipeline.json").read_text())["source"]["model"]
    assert recorded == str(work / "model")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = child(["verify", str(work / "out"), "--modes", "fp32"], elsewhere)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_read_only_commands_change_nothing(tiny_converted_dir, tmp_path, capsys):
    """inspect, verify and generate only read OUT: on a read-only disk where this user may mount one
    (else a copy), every file keeps its bytes and its mtime."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(disk)], capture_output=True).returncode == 0
    try:
        folder = disk / "converted"
        shutil.copytree(tiny_converted_dir, folder)
        if mounted:
            assert subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True).returncode == 0

        def state():
            return {str(p): (p.stat().st_mtime_ns, tree_sha256(p)) for p in sorted(folder.rglob("*")) if p.is_file()}

        before = state()
        for argv in (["inspect", str(folder)], ["verify", str(folder), "--modes", "fp32"],
                     ["generate", str(folder), "--prompt", "x", "--steps", "1", "-o", str(tmp_path / "x.png")]):
            code, _, err = run_cli(argv, capsys)
            assert code == 0, (argv, err)
        assert state() == before
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_package_paths_outside_the_folder_are_refused(folder, tmp_path, capsys):
    outside = tmp_path / "Unet.mlpackage"
    shutil.copytree(folder / "Unet.mlpackage", outside)
    data = json.loads((folder / "pipeline.json").read_text())
    data["components"]["unet"]["file"] = "../Unet.mlpackage"
    (folder / "pipeline.json").write_text(json.dumps(data))
    code, _, err = run_cli(["inspect", str(folder)], capsys)
    assert code == 2
    assert one_error(err) == ("error: expected components.unet.file as a file name inside the folder (no / or \\, "
                              f"not . or ..), got a string '../Unet.mlpackage' (in {folder / 'pipeline.json'})")


SWIFT_CLI = REPO / "ios_app" / ".build" / "debug" / "snapfusion-cli"


@pytest.mark.skipif(not SWIFT_CLI.is_file(), reason="build it with: cd ios_app && swift build")
def test_swift_cli_exits_2_for_bad_input_before_loading(tmp_path):
    golden = json.loads((REPO / "tests" / "golden" / "pipelines.json").read_text())
    valid = next(c["pipeline"] for c in golden["cases"] if c["name"] == "valid")
    folder = tmp_path / "sw"
    folder.mkdir()
    (folder / "pipeline.json").write_text(json.dumps(valid))
    for name in ("TextEncoder.mlpackage", "VAEDecoder.mlpackage"):
        (folder / name).mkdir()
    (folder / "Unet.mlpackage").write_text("a file, not a package")
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(REPO / "models" / "tokenizer" / name, folder / name)
    base = [str(SWIFT_CLI), "generate", "--resources", str(folder), "--prompt", "x", "--backend", "interpreter"]
    cases = [
        (["-o", str(tmp_path / "a.png")], f"error: expected Unet.mlpackage as a package folder, got a file (in {folder})"),
        (["--steps", "0", "-o", str(tmp_path / "a.png")], "error: expected --steps >= 1, got 0"),
        (["-o", str(tmp_path / "none" / "a.png")], f"error: expected a writable folder for {tmp_path / 'none' / 'a.png'}, "
                                                   f"got a missing, read-only or inaccessible folder (in {tmp_path / 'none'})"),
    ]
    for extra, line in cases:
        done = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and done.stderr.strip() == line, (extra, done.stderr)
    (folder / "Unet.mlpackage").unlink()
    (folder / "Unet.mlpackage").mkdir()
    done = subprocess.run([*base, "--steps", "1001", "-o", str(tmp_path / "a.png")], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip() == (
        f"error: expected --steps <= 1000 (the noise schedule's num_train_timesteps), got 1001 (in {folder / 'pipeline.json'})")
    assert not (tmp_path / "a.png").exists()


@pytest.mark.skipif(not SWIFT_CLI.is_file(), reason="build it with: cd ios_app && swift build")
def test_swift_cli_image_to_image_inputs_exit_2_before_loading(tmp_path):
    """--init-image (binary PPM), --strength and --image-size: one line and exit 2 before any model runs."""
    golden = json.loads((REPO / "tests" / "golden" / "pipelines.json").read_text())
    valid = next(c["pipeline"] for c in golden["cases"] if c["name"] == "valid")
    folder = tmp_path / "sw"
    folder.mkdir()
    for name in ("TextEncoder.mlpackage", "Unet.mlpackage", "VAEDecoder.mlpackage"):
        (folder / name).mkdir()
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(REPO / "models" / "tokenizer" / name, folder / name)
    (folder / "pipeline.json").write_text(json.dumps(valid))
    ppm = tmp_path / "in.ppm"
    ppm.write_bytes(b"P6\n# 64x64 black\n64 64\n255\n" + bytes(64 * 64 * 3))
    wide = tmp_path / "wide.ppm"
    wide.write_bytes(b"P6\n96 64\n255\n" + bytes(96 * 64 * 3))
    png = tmp_path / "in.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    pipeline_json = folder / "pipeline.json"
    base = [str(SWIFT_CLI), "generate", "--resources", str(folder), "--prompt", "x", "--backend", "interpreter",
            "-o", str(tmp_path / "a.png")]
    cases = [
        (["--strength", "0.5"], "error: --strength needs --init-image (it is for image-to-image only)"),
        (["--init-image", str(ppm), "--strength", "0"], "error: expected --strength in (0, 1], got 0.0"),
        (["--image-size", "64"], 'error: expected --image-size as HxW (height x width, e.g. 512x768), got "64"'),
        (["--image-size", "64x96"], "error: expected an image size this folder was converted for (64x64; height x width), "
                                    f"got 64x96 (in {pipeline_json})"),
        (["--init-image", str(tmp_path / "none.ppm")],
         f"error: expected --init-image as a readable PPM file, got a missing or unreadable file ({tmp_path / 'none.ppm'})"),
        (["--init-image", str(png)], "error: expected a binary PPM image (starting with P6), got another format; convert it, "
                                     "e.g. python -c \"from PIL import Image; Image.open('in.png').convert('RGB').save('in.ppm')\" "
                                     f"(in {png})"),
        (["--init-image", str(ppm)], "error: this folder has no encoder, which image-to-image needs: convert with "
                                     f"--components including encoder (in {pipeline_json})"),
    ]
    for extra, line in cases:
        done = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and done.stderr.strip() == line, (extra, done.stderr)
    # with an encoder: a strength that leaves no step of the 8, and (Linux) a starting image of another size
    valid["components"]["encoder"] = {**valid["components"]["decoder"], "file": "VAEEncoder.mlpackage"}
    pipeline_json.write_text(json.dumps(valid))
    (folder / "VAEEncoder.mlpackage").mkdir()
    cases = [
        (["--init-image", str(ppm), "--strength", "0.1"],
         "error: expected at least one sampling step, got none: strength 0.1 of 8 steps runs int(8 * 0.1) = 0 "
         f"(raise the strength or the steps) (in {pipeline_json})"),
        (["--init-image", str(wide)], "error: expected a starting image of 64x64 (height x width), got 64x96: resize it first "
                                      f"(only Apple platforms resize the starting image) (in {pipeline_json})"),
    ]
    for extra, line in cases:
        done = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and done.stderr.strip() == line, (extra, done.stderr)
    assert not (tmp_path / "a.png").exists()
