"""Where MODEL lives: a local folder, or a hub id. Free of torch, so the command line checks MODEL
before it imports anything heavy (a mistyped path fails in well under a second).

  - a local path always wins;
  - "hf:org/name" is fetched from the hub (the cache first);
  - a bare "org/name" that is no local folder is used only if the hub cache already holds it, so
    a mistyped local path fails at once instead of being looked up on the network.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError

HUB_PREFIX = "hf:"  # MODEL "hf:org/name" is downloaded from the hub


def looks_like_hub_id(model: str | Path) -> bool:
    """"org/name" (one slash, not a relative or absolute path): the shape of a hub id."""
    text = str(model)
    return text.startswith(HUB_PREFIX) or (text.count("/") == 1 and not text.startswith((".", "/", "~")))


def resolve_model_path(model: str | Path, allow_file: bool = False) -> Path:
    """A local folder for MODEL (or, with `allow_file`, a single-file checkpoint).

    A local path wins. "hf:org/name" is fetched from the hub (the cache first). A bare "org/name"
    that is no local folder is used only if the hub cache already holds it: a mistyped local path
    fails at once instead of being looked up on the network.
    """
    text = str(model)
    if text.startswith(HUB_PREFIX):
        return _hub_snapshot(text[len(HUB_PREFIX):], local_only=False)
    path = Path(model)
    if path.exists():
        if path.is_file() and allow_file:
            return path
        if not path.is_dir():
            raise UserError(f"expected a model folder, got a file: {path}")
        return path
    if looks_like_hub_id(text):
        try:
            return _hub_snapshot(text, local_only=True)
        except UserError:
            raise UserError(f"model folder not found: {path} (for a hub id not downloaded yet, "
                            f"write {HUB_PREFIX}{text})") from None
    raise UserError(f"model folder not found: {path}")


def _hub_snapshot(repo_id: str, local_only: bool) -> Path:
    """The files of hub model `repo_id` that loading needs (from the cache only, if `local_only`)."""
    try:
        from huggingface_hub import snapshot_download

        patterns = ["model_index.json", "*/config.json", "*/*.json", "*/*.txt", "*/*.safetensors"]
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=local_only))
    except Exception as exc:
        raise UserError(f"expected hub model {repo_id!r} to be downloadable, got {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}") from None
