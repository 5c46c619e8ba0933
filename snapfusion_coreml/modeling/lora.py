"""LoRA adapters merged into the base weights before conversion (W' = W + scale * alpha/r * B A).

A LoRA file is a safetensors file in one of the layouts the common trainers write, for the UNet
and the text encoder:

  diffusers/peft  unet.{module}.lora_A.weight (r, in[, kh, kw]), unet.{module}.lora_B.weight (out, r[, 1, 1]);
                  text_encoder.{module}.lora_A/lora_B; alpha and r in the header's
                  "lora_adapter_metadata" (diffusers' save_lora_weights), else alpha = r;
  diffusers (older)  {prefix}.{module}.lora.down/up.weight, {prefix}.{module}.lora_linear_layer.down/up.weight,
                  unet.{attention}.processor.to_q_lora.down/up.weight (to_out_lora: to_out.0);
                  text_encoder.{attention}.to_q_lora.down/up.weight (q_proj ... out_proj); optional {module}.alpha;
  kohya           lora_unet_{module with "_" for "."}.lora_down.weight / .lora_up.weight / .alpha,
                  lora_te_{module}... for the text encoder (lora_te1_ is read the same way).

Modules are diffusers' UNet2DConditionModel names and transformers' CLIPTextModel names, which
are the checkpoint keys of both components (modeling/unet.py, text_encoder.py). The update of
one module is up.flatten(1) @ down.flatten(1) reshaped to the weight: a Linear (out, in), a 1x1
conv (out, in, 1, 1) or a kxk conv whose down projection carries the kernel (LoCon). Merging runs
in float32 on the checkpoint state dict, before any layout mapping, so a UNet converted with
--layout gets the adapter on the blocks it keeps or copies.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch

from ..convert_spec import LoraSpec
from ..digests import tree_sha256
from ..errors import UserError
from ..io import recorded_path

UNET, TEXT_ENCODER = "unet", "text_encoder"
METADATA_KEY = "lora_adapter_metadata"  # diffusers' header entry holding peft's LoraConfig per component
KOHYA_PREFIXES = {"lora_unet_": UNET, "lora_te_": TEXT_ENCODER, "lora_te1_": TEXT_ENCODER}
KOHYA_ROLES = {"lora_down.weight": "down", "lora_up.weight": "up", "alpha": "alpha"}
# diffusers' older attention-processor names -> the module they adapt, per component
PROCESSOR_NAMES = {
    UNET: {"to_q_lora": "to_q", "to_k_lora": "to_k", "to_v_lora": "to_v", "to_out_lora": "to_out.0"},
    TEXT_ENCODER: {"to_q_lora": "q_proj", "to_k_lora": "k_proj", "to_v_lora": "v_proj", "to_out_lora": "out_proj"},
}
SUFFIXES = (  # (regex on the key after the component prefix, role)
    (re.compile(r"^(?P<m>.+)\.lora_A(?:\.[^.]+)?\.weight$"), "down"),
    (re.compile(r"^(?P<m>.+)\.lora_B(?:\.[^.]+)?\.weight$"), "up"),
    (re.compile(r"^(?P<m>.+)\.(?:lora|lora_linear_layer)\.down\.weight$"), "down"),
    (re.compile(r"^(?P<m>.+)\.(?:lora|lora_linear_layer)\.up\.weight$"), "up"),
    (re.compile(r"^(?P<m>.+?)(?:\.processor)?\.(?P<p>to_[qkv]_lora|to_out_lora)\.down\.weight$"), "down"),
    (re.compile(r"^(?P<m>.+?)(?:\.processor)?\.(?P<p>to_[qkv]_lora|to_out_lora)\.up\.weight$"), "up"),
    (re.compile(r"^(?P<m>.+)\.alpha$"), "alpha"),
)
FLOAT16_MAX = 65504.0  # packages store weights in float16: a larger merged weight becomes infinity
UNSUPPORTED = ("lora_magnitude_vector", "dora_scale", "lora_mid", "hada_", "lokr_", "lora_te2_", "lora_embedding_")


@dataclass(frozen=True)
class LoraPair:
    """The low-rank update of one module: up (out, r, ...) @ down (r, in, ...) * factor."""

    key: str  # the first key of the file naming this module (for messages)
    down: torch.Tensor
    up: torch.Tensor
    factor: float  # user scale * alpha / r (or alpha / sqrt(r) for rank-stabilised LoRA)


@dataclass(frozen=True)
class LoraFile:
    """A parsed LoRA file: per component, module name (or kohya's underscored name) -> update."""

    spec: LoraSpec
    sha256: str
    kohya: bool
    pairs: Mapping[str, Mapping[str, LoraPair]]

    def record(self) -> dict:
        """Its entry in pipeline.json source.loras (docs/contracts.md section 2)."""
        return {"file": self.spec.path.name, "sha256": self.sha256, "scale": self.spec.scale,
                "path": recorded_path(str(self.spec.path))}


def read_lora(spec: LoraSpec) -> LoraFile:
    """Read and check one LoRA file (no model needed): every tensor must belong to a known layout."""
    path = spec.path
    spec.check_file()
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises its own error type for corrupt headers/data
        raise UserError(f"expected a valid safetensors LoRA file, got a corrupt or truncated one: {exc} (in {path})") from None
    if not tensors:
        raise UserError(f"expected LoRA tensors, got an empty file (in {path})")
    kohya = any(k.startswith(tuple(KOHYA_PREFIXES)) for k in tensors)
    parts: dict[tuple[str, str], dict[str, torch.Tensor | str]] = {}
    for key, value in tensors.items():
        component, module, role = _classify(key, kohya, path)
        entry = parts.setdefault((component, module), {"key": key})
        if role in entry:
            raise UserError(f"expected one {role} tensor per module, got a second one {key!r} (in {path})")
        entry[role] = value
    config = _peft_config(metadata, path)
    pairs: dict[str, dict[str, LoraPair]] = {UNET: {}, TEXT_ENCODER: {}}
    for (component, module), entry in parts.items():
        if "down" not in entry or "up" not in entry:
            missing = "up" if "down" in entry else "down"
            raise UserError(f"expected a {missing} tensor beside {entry['key']!r}, found none (in {path})")
        down, up = _values(entry, "down", path), _values(entry, "up", path)
        if down.dim() < 2 or down.shape[0] < 1:
            raise UserError(f"expected {entry['key']!r} down of shape (rank >= 1, in, ...), got {tuple(down.shape)} (in {path})")
        rank = down.shape[0]
        if up.dim() < 2 or up.shape[1] != rank:
            raise UserError(f"expected {entry['key']!r} up of shape (out, {rank}, ...), got {tuple(up.shape)} (in {path})")
        alpha = _values(entry, "alpha", path) if "alpha" in entry else None
        if alpha is not None and alpha.numel() != 1:
            raise UserError(f"expected {entry['key']!r} alpha as one number, got a tensor of shape {tuple(alpha.shape)} (in {path})")
        factor = spec.scale * _alpha_factor(alpha, rank, config.get(component), module, path)
        if not math.isfinite(factor):
            raise UserError(f"expected a finite LoRA factor scale * alpha / rank for {entry['key']!r}, got {factor} "
                            f"(scale {spec.scale:g}) (in {path})")
        pairs[component][module] = LoraPair(str(entry["key"]), down, up, factor)
    return LoraFile(spec, tree_sha256(path), kohya, pairs)


def _values(entry: dict, role: str, path: Path) -> torch.Tensor:
    """The `role` tensor of one module as float32, refused when it holds NaN or infinities."""
    value = entry[role]
    if value.is_complex():
        raise UserError(f"expected real LoRA values, got complex {value.dtype} in the {role} tensor of "
                        f"{entry['key']!r} (in {path})")
    value = value.float()
    if not torch.isfinite(value).all():
        raise UserError(f"expected finite LoRA values, got NaN or infinity in the {role} tensor of "
                        f"{entry['key']!r} (in {path})")
    return value


def _classify(key: str, kohya: bool, path: Path) -> tuple[str, str, str]:
    """(component, module, role) of one tensor name, or a clear error."""
    if any(mark in key for mark in UNSUPPORTED):
        raise UserError(f"expected a plain LoRA (no DoRA, LoHa, LoKr or SDXL second text encoder), got {key!r} (in {path})")
    if kohya:
        for prefix, component in KOHYA_PREFIXES.items():
            if key.startswith(prefix):
                name, _, rest = key[len(prefix):].partition(".")
                if rest in KOHYA_ROLES:
                    return component, name, KOHYA_ROLES[rest]
        raise UserError(f"expected kohya LoRA keys lora_unet_*/lora_te_* ending in .lora_down.weight, "
                        f".lora_up.weight or .alpha, got {key!r} (in {path})")
    component, _, rest = key.partition(".")
    if component in (UNET, TEXT_ENCODER):
        for pattern, role in SUFFIXES:
            match = pattern.match(rest)
            if match:
                module = match.group("m")
                processor = match.groupdict().get("p")
                if processor:
                    module = f"{module}.{PROCESSOR_NAMES[component][processor]}"
                return component, module, role
    raise UserError(f"expected LoRA keys unet.*/text_encoder.* ending in .lora_A/.lora_B.weight or .lora.down/up.weight, "
                    f"or kohya lora_unet_*/lora_te_* keys, got {key!r} (in {path})")


def _peft_config(metadata: dict[str, str], path: Path) -> dict[str, dict]:
    """component -> peft LoraConfig fields from diffusers' header metadata ({} when absent)."""
    text = metadata.get(METADATA_KEY)
    if not text:
        return {}
    try:
        flat = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"expected JSON in the {METADATA_KEY} header entry, got invalid JSON: {exc} (in {path})") from None
    except RecursionError:
        raise UserError(f"expected a flat JSON object in the {METADATA_KEY} header entry, got deeper nesting "
                        f"than the parser takes (in {path})") from None
    if not isinstance(flat, dict):
        raise UserError(f"expected a JSON object in the {METADATA_KEY} header entry, got {type(flat).__name__} (in {path})")
    config: dict[str, dict] = {}
    for name, value in flat.items():  # diffusers packs them as "{component}.{field}"
        component, _, field = name.partition(".")
        config.setdefault(component, {})[field] = value
    for component, fields in config.items():
        for field in ("lora_alpha", "r"):
            if field in fields:
                _number(fields[field], f"{component}.{field}", path)
        patterns = fields.get("alpha_pattern")
        if patterns is None:
            continue
        if not isinstance(patterns, dict):
            raise UserError(f"expected {METADATA_KEY} {component}.alpha_pattern as an object, got "
                            f"{type(patterns).__name__} (in {path})")
        for pattern, value in patterns.items():
            try:
                re.compile(rf"(.*\.)?({pattern})$")
            except (re.error, RecursionError, OverflowError) as exc:
                raise UserError(f"expected {METADATA_KEY} {component}.alpha_pattern keys as regular expressions, "
                                f"got {pattern!r}: {exc} (in {path})") from None
            _number(value, f"{component}.alpha_pattern[{pattern!r}]", path)
    return config


def _number(value, name: str, path: Path) -> float:
    """A finite number of the LoRA header metadata, or one error naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        shown = repr(value) if len(repr(value)) <= 40 else type(value).__name__
        raise UserError(f"expected {METADATA_KEY} {name} as a finite number, got {shown} (in {path})")
    return float(value)


def _alpha_factor(alpha: torch.Tensor | None, rank: int, config: dict | None, module: str, path: Path) -> float:
    """alpha / r: alpha from the file's .alpha tensor, else peft's config (with its per-module
    patterns), else alpha = r (a factor of 1, what diffusers assumes)."""
    if alpha is not None:
        return float(alpha.item()) / rank
    if not config:
        return 1.0
    value = _number(config.get("lora_alpha", config.get("r", rank)), "lora_alpha", path)
    for pattern, pattern_alpha in (config.get("alpha_pattern") or {}).items():
        if re.match(rf"(.*\.)?({pattern})$", module):
            value = float(pattern_alpha)
            break
    return value / math.sqrt(rank) if config.get("use_rslora") else value / rank


def merge_lora(state: dict[str, torch.Tensor], component: str, loras: list[LoraFile], source: str) -> int:
    """Add every LoRA update for `component` to the checkpoint state dict, in place (float32).

    state: checkpoint keys ("{module}.weight") -> tensors in diffusers/transformers shapes.
    Returns how many weights were changed. A LoRA module naming no weight of `state`, or an update
    whose shape does not fit its weight, is a UserError naming the LoRA file.
    """
    names = module_names(state, component)
    underscored = {name.replace(".", "_"): module for name, module in names.items()}
    changed = 0
    for lora in loras:
        pairs = lora.pairs[component]
        resolved = [((underscored if lora.kohya else names).get(name), pair) for name, pair in pairs.items()]
        unmatched = [pair.key for name, pair in resolved if name is None]
        if unmatched:
            what = "the UNet" if component == UNET else "the text encoder"
            raise UserError(f"expected LoRA keys naming layers of {what} of {source}, got {len(unmatched)} of "
                            f"{len(pairs)} that match nothing (first: {unmatched[0]!r}) (in {lora.spec.path})")
        for name, pair in resolved:
            key = f"{name}.weight"
            merged = state[key].float() + lora_delta(pair, tuple(state[key].shape), lora.spec.path)
            largest = float(merged.abs().max()) if merged.numel() else 0.0
            if not largest <= FLOAT16_MAX:  # NaN fails too: the fp16 package would hold infinities
                raise UserError(f"expected weights within float16 range (|w| <= {FLOAT16_MAX:g}) after merging LoRA "
                                f"{pair.key!r} at scale {lora.spec.scale:g}, got |w| = {largest:g} in {key} "
                                f"(in {lora.spec.path})")
            state[key] = merged
            changed += 1
    return changed


def module_names(state: dict[str, torch.Tensor], component: str) -> dict[str, str]:
    """Name a LoRA may use -> module of `state` with a weight. The text encoder answers to both
    transformers' spellings, with and without the "text_model." prefix (transformers 5 drops it;
    LoRAs trained on transformers 4 carry it)."""
    modules = [key[: -len(".weight")] for key in state if key.endswith(".weight")]
    names = {name: name for name in modules}
    if component == TEXT_ENCODER:
        prefix = "text_model."
        names.update({(name[len(prefix):] if name.startswith(prefix) else prefix + name): name for name in modules})
    return names


def lora_delta(pair: LoraPair, shape: tuple[int, ...], path: Path) -> torch.Tensor:
    """factor * up @ down reshaped to `shape` (out, in[, kh, kw]); a UserError when it does not fit."""
    up, down = pair.up.flatten(1), pair.down.flatten(1)  # (out, r), (r, in * kh * kw)
    if up.shape[0] != shape[0] or up.shape[0] * down.shape[1] != math.prod(shape):
        raise UserError(f"expected LoRA {pair.key!r} to update a weight of shape {shape}, got up "
                        f"{tuple(pair.up.shape)} x down {tuple(pair.down.shape)} (in {path})")
    return (pair.factor * (up @ down)).reshape(shape)


def unused_components(loras: list[LoraFile], loaded: tuple[str, ...]) -> list[str]:
    """Components some LoRA adapts that were not loaded (so were not checked or merged)."""
    return sorted({c for lora in loras for c, pairs in lora.pairs.items() if pairs and c not in loaded})

