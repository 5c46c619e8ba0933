"""The CLIP BPE tokenizer: loaded from vocab.json + merges.txt or a tokenizer.json, written back as
vocab.json + merges.txt (the files the converted folder and the Swift tokenizer use)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from .errors import UserError
from .io import read_json

MAX_LENGTH = 77


def load_tokenizer(directory: Path):
    """transformers' CLIPTokenizer from a tokenizer folder."""
    from transformers import CLIPTokenizer

    directory = Path(directory)
    vocab, merges = directory / "vocab.json", directory / "merges.txt"
    if vocab.is_file() and merges.is_file():
        read_json(vocab, "the CLIP vocabulary")
        return CLIPTokenizer(str(vocab), str(merges), model_max_length=MAX_LENGTH)
    if (directory / "tokenizer.json").is_file():
        with tempfile.TemporaryDirectory() as tmp:
            write_tokenizer_files(directory, Path(tmp))
            return CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"), model_max_length=MAX_LENGTH)
    raise UserError(f"expected vocab.json + merges.txt or tokenizer.json in {directory}, found neither")


def write_tokenizer_files(source: Path, out: Path) -> None:
    """Write vocab.json and merges.txt into `out` from a folder holding either form."""
    source, out = Path(source), Path(out)
    if (source / "vocab.json").is_file() and (source / "merges.txt").is_file():
        vocab = read_json(source / "vocab.json", "the CLIP vocabulary")
        merges_text = (source / "merges.txt").read_text(encoding="utf-8")
    else:
        data = read_json(source / "tokenizer.json", "a tokenizers JSON file")
        vocab, merges_text = _bpe_files(data, str(source / "tokenizer.json"))
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out / "merges.txt").write_text(merges_text, encoding="utf-8")


def save_tokenizer(tokenizer, out: Path) -> None:
    """Write a loaded CLIPTokenizer's vocab.json and merges.txt into `out`."""
    vocab, merges_text = _bpe_files(json.loads(tokenizer.backend_tokenizer.to_str()), "the loaded tokenizer")
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out / "merges.txt").write_text(merges_text, encoding="utf-8")


def _bpe_files(data: dict, source: str) -> tuple[dict, str]:
    model = data.get("model") or {}
    if model.get("type") != "BPE" or "vocab" not in model or "merges" not in model:
        raise UserError(f"expected a BPE tokenizer model, got {model.get('type')!r} (in {source})")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return model["vocab"], "#version: 0.2\n" + "\n".join(merges) + "\n"


def tokenize(tokenizer, prompts: list[str]):
    """(B, 77) int64 token ids, padded and truncated as SD does."""
    return tokenizer(prompts, padding="max_length", max_length=MAX_LENGTH, truncation=True, return_tensors="pt").input_ids
