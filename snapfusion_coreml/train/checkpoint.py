"""Training checkpoints, written atomically so a kill at any moment leaves the previous one usable.

Layout of RUN_DIR/checkpoints/step-00000042/:
  model.safetensors   trainable weights (the module's own state_dict)
  ema.safetensors     EMA shadow weights (absent when EMA is off)
  optimizer.pt        optimizer.state_dict(), loaded back with torch.load(weights_only=True)
  rng-{rank}.safetensors  torch CPU (and CUDA) RNG state of every process
  state.json          step, configuration fingerprint; written last

A checkpoint is filled in a hidden `.step-N.partial` sibling and only then renamed into place
with os.replace (atomic on POSIX): readers see either the complete folder or nothing. Partial
folders left by a kill are ignored and removed by the next save.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import UserError
from ..io import move_into_place, write_json
from ..json_fields import read_json

PREFIX = "step-"
STATE_FILE = "state.json"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int
    fingerprint: dict[str, Any]


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[Checkpoint]:
    """Complete checkpoints, oldest first (partial ones never have the final name)."""
    root = checkpoint_dir(run_dir)
    found = []
    for path in sorted(root.glob(f"{PREFIX}*")) if root.is_dir() else []:
        state = path / STATE_FILE
        if not state.is_file():
            continue
        data = read_json(state, "a checkpoint state")
        found.append(Checkpoint(path, int(data["step"]), data.get("fingerprint", {})))
    return sorted(found, key=lambda c: c.step)


def latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def _tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def rng_state() -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            state[f"cuda.{i}"] = s
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"])
    cuda = [state[k] for k in sorted(k for k in state if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def partial_path(run_dir: Path, step: int) -> Path:
    return checkpoint_dir(run_dir) / f".{PREFIX}{step:08d}.partial"


def begin_checkpoint(run_dir: Path, step: int) -> Path:
    """Create (afresh) the hidden folder a checkpoint is written into; called on the main process."""
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f".{PREFIX}*.partial"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = partial_path(run_dir, step)
    tmp.mkdir()
    return tmp


def write_payload(tmp: Path, model: dict[str, torch.Tensor], ema: dict[str, torch.Tensor] | None,
                  optimizer: dict[str, Any]) -> None:
    save_file(_tensors(model), str(tmp / "model.safetensors"))
    if ema is not None:
        save_file(_tensors(ema), str(tmp / "ema.safetensors"))
    torch.save(optimizer, tmp / "optimizer.pt")


def write_rng(tmp: Path, rank: int) -> None:
    save_file(_tensors(rng_state()), str(tmp / f"rng-{rank}.safetensors"))


def commit_checkpoint(run_dir: Path, tmp: Path, step: int, fingerprint: dict[str, Any], keep: int = 2) -> Path:
    """Write state.json last, move the folder into place atomically, prune old checkpoints."""
    write_json(tmp / STATE_FILE, {"step": step, "fingerprint": fingerprint})
    final = checkpoint_dir(run_dir) / f"{PREFIX}{step:08d}"
    move_into_place(tmp, final)  # re-saving a step (e.g. after resuming at it) swaps atomically
    for stale in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(stale.path, ignore_errors=True)
    return final


def read_checkpoint(ckpt: Checkpoint, rank: int) -> tuple[dict, dict | None, dict, dict | None]:
    """(model state, EMA state or None, optimizer state, this rank's RNG state or None)."""
    path = ckpt.path
    try:
        model = load_file(str(path / "model.safetensors"))
        ema = load_file(str(path / "ema.safetensors")) if (path / "ema.safetensors").is_file() else None
        optimizer = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
        rng_file = path / f"rng-{rank}.safetensors"
        rng = load_file(str(rng_file)) if rng_file.is_file() else None
    except Exception as exc:  # a corrupt file in a complete checkpoint: say which
        raise UserError(f"expected a readable training checkpoint, got: {exc} (in {path})") from None
    return model, ema, optimizer, rng
