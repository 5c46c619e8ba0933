"""Output folders written atomically: a temporary sibling is filled, then moved into place.

A failed or interrupted run leaves no partial OUT and never touches a previous good OUT; a full
disk becomes one clear error.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import UserError


@contextmanager
def atomic_directory(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces `out`, on any failure it is removed."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"expected {out} to be a folder, got a file")
    if out.exists() and not overwrite:
        raise UserError(f"output folder {out} already exists; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        move_into_place(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise UserError(f"disk full while writing {out}; nothing was changed there") from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: Path, data: Any) -> None:
    """Write `data` as indented JSON, atomically (a temporary sibling moved into place)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def move_into_place(tmp: Path, out: Path) -> None:
    """Replace folder `out` by the complete folder `tmp` (the old one, if any, is removed after)."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from `path`, with one clear error for missing or invalid files."""
    if not path.is_file():
        raise UserError(f"expected {what} at {path}, found none")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"expected {what} as JSON, got invalid JSON: {exc} (in {path})") from None
    if not isinstance(data, dict):
        raise UserError(f"expected {what} as a JSON object, got {type(data).__name__} (in {path})")
    return data


def tree_sha256(path: Path) -> str:
    """sha256 of a file, or of a folder as docs/contracts.md section 2 defines it."""
    path = Path(path)
    if path.is_file():
        return _file_sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        digest.update(f"{rel}\0{_file_sha256(file)}\n".encode())
    return digest.hexdigest()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dir_size(path: Path) -> int:
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write_png(path: Path, image) -> None:
    """Write an (H, W, 3) uint8 array as a PNG, atomically (a temporary sibling moved into place)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        Image.fromarray(image).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
