"""The CLIP BPE tokenizer: loaded from vocab.json + merges.txt or a tokenizer.json, written back as
vocab.json + merges.txt (the files the converted folder and the Swift tokenizer use).

The pad token is the folder's own: SD-1.x pads with "<|endoftext|>" (id 49407), SD-2.x's tokenizer
with "!" (id 0). transformers 4.x writes it into tokenizer_config.json and special_tokens_map.json,
either as a string or as an AddedToken dict ({"content": "!", "lstrip": false, ...}).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from .errors import UserError
from .json_fields import read_json

MAX_LENGTH = 77


DEFAULT_PAD = "<|endoftext|>"
# read in this order: where both name a pad token, special_tokens_map.json decides
SPECIAL_TOKENS_FILES = ("tokenizer_config.json", "special_tokens_map.json")


def load_tokenizer(directory: Path, pad_token_id: int | None = None, pad: str | None = None):
    """transformers' CLIPTokenizer from a tokenizer folder, padding with the folder's pad token,
    or with `pad_token_id` (e.g. pipeline.json's) or the token `pad` when given."""
    from transformers import CLIPTokenizer

    directory = Path(directory)
    vocab, merges = directory / "vocab.json", directory / "merges.txt"
    with tempfile.TemporaryDirectory() as tmp:
        if not (vocab.is_file() and merges.is_file()):
            if not (directory / "tokenizer.json").is_file():
                raise UserError(f"expected vocab.json + merges.txt or tokenizer.json in {directory}, found neither")
            write_tokenizer_files(directory, Path(tmp))
            vocab, merges = Path(tmp) / "vocab.json", Path(tmp) / "merges.txt"
        words = read_json(vocab, "the CLIP vocabulary")
        if pad is None:
            pad = pad_token(directory) if pad_token_id is None else _token_of(words, pad_token_id, vocab)
        if pad not in words:
            raise UserError(f"expected the pad token {pad!r} in the vocabulary, found none (in {vocab})")
        return CLIPTokenizer(str(vocab), str(merges), model_max_length=MAX_LENGTH, pad_token=pad)


def pad_token(directory: Path) -> str:
    """The pad token a tokenizer folder declares (transformers 4.x files), "<|endoftext|>" if none."""
    pad = DEFAULT_PAD
    for name in SPECIAL_TOKENS_FILES:
        path = Path(directory) / name
        if not path.is_file():
            continue
        value = read_json(path, "a tokenizer settings file").get("pad_token")
        if isinstance(value, dict):
            value = value.get("content")
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise UserError(f"expected pad_token to be a token string or an AddedToken dict, got {value!r} (in {path})")
        pad = value
    return pad


def _token_of(words: dict, token_id: int, source: Path) -> str:
    for word, i in words.items():
        if i == token_id:
            return word
    raise UserError(f"expected pad token id {token_id} in the vocabulary, found none (in {source})")


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


def save_tokenizer(tokenizer, out: Path, special_tokens: bool = False) -> None:
    """Write a loaded CLIPTokenizer's vocab.json and merges.txt into `out`; with `special_tokens`
    also special_tokens_map.json naming its pad token (this project's model folders)."""
    vocab, merges_text = _bpe_files(json.loads(tokenizer.backend_tokenizer.to_str()), "the loaded tokenizer")
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out / "merges.txt").write_text(merges_text, encoding="utf-8")
    if special_tokens:
        (out / "special_tokens_map.json").write_text(json.dumps({"pad_token": str(tokenizer.pad_token)}, ensure_ascii=False),
                                                     encoding="utf-8")


def _bpe_files(data: dict, source: str) -> tuple[dict, str]:
    model = data.get("model") or {}
    if model.get("type") != "BPE" or "vocab" not in model or "merges" not in model:
        raise UserError(f"expected a BPE tokenizer model, got {model.get('type')!r} (in {source})")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return model["vocab"], "#version: 0.2\n" + "\n".join(merges) + "\n"


def tokenize(tokenizer, prompts: list[str]):
    """(B, 77) int64 token ids, padded and truncated as SD does."""
    return tokenizer(prompts, padding="max_length", max_length=MAX_LENGTH, truncation=True, return_tensors="pt").input_ids
