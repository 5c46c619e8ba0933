"""Content digests and sizes of files and folders: a folder's sha256 as docs/contracts.md section 2
defines it (pipeline.json records one per package) and its size on disk."""

from __future__ import annotations

import hashlib
from pathlib import Path


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
