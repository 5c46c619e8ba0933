"""The `sampler` record of pipeline.json (docs/contracts.md section 3): a sampler's settings and
every list it steps through, so that Swift computes no schedule of its own. Torch-free.

Its Swift twin is ios_app/Sources/SnapFusionKit/Description/PipelineDescription.swift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..config import TIMESTEP_SPACINGS
from ..json_fields import JsonFields
from .settings import SAMPLER_NAMES, SCHEDULER_CLASSES, SIGMA_SAMPLERS, SamplerSettings

_OPTIONAL_SETTINGS = ("eta", "clip_sample", "use_karras_sigmas", "final_sigmas_type", "solver_order", "solver_type",
                      "lower_order_final", "euler_at_final", "original_inference_steps", "timestep_scaling")
_USED_BY = {  # settings keys written for each sampler (the rest are null)
    "ddim": ("eta", "clip_sample"),
    "pndm": (),
    "dpmsolver++": ("use_karras_sigmas", "final_sigmas_type", "solver_order", "solver_type", "lower_order_final",
                    "euler_at_final"),
    "euler": ("use_karras_sigmas", "final_sigmas_type"),
    "euler_ancestral": (),
    "lcm": ("clip_sample", "original_inference_steps", "timestep_scaling"),
    "tcd": ("eta", "original_inference_steps"),
}


@dataclass(frozen=True)
class SamplerRecord:
    """A planned sampler: `settings` plus the lists of one step count (`default_steps`).

    timesteps: the UNet's timestep input per call, in call order (pndm repeats one; euler's may be
    fractional). previous_timesteps / current_timesteps: alpha samplers' step targets / sources
    (-1: the end). sigmas: sigma samplers', one per call plus the final one.
    """

    settings: SamplerSettings
    default_steps: int
    timesteps: tuple[float, ...]
    final_alpha_cumprod: float
    init_noise_sigma: float = 1.0
    scale_model_input: bool = False
    previous_timesteps: tuple[int, ...] | None = None
    current_timesteps: tuple[int, ...] | None = None
    sigmas: tuple[float, ...] | None = None

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def calls(self) -> int:
        """UNet calls per image without guidance (pndm: steps + 1)."""
        return len(self.timesteps)

    def to_dict(self) -> dict[str, Any]:
        s = self.settings
        data: dict[str, Any] = {
            "name": s.name, "scheduler_class": s.scheduler_class, "default_steps": self.default_steps,
            "timestep_spacing": s.timestep_spacing, "steps_offset": s.steps_offset,
            "timesteps": [_number(t) for t in self.timesteps],
            "previous_timesteps": None if self.previous_timesteps is None else list(self.previous_timesteps),
            "current_timesteps": None if self.current_timesteps is None else list(self.current_timesteps),
            "sigmas": None if self.sigmas is None else list(self.sigmas),
            "init_noise_sigma": self.init_noise_sigma, "scale_model_input": self.scale_model_input,
            "final_alpha_cumprod": None if s.name in SIGMA_SAMPLERS else self.final_alpha_cumprod,
        }
        used = _USED_BY[s.name]
        for key in _OPTIONAL_SETTINGS:
            data[key] = getattr(s, key) if key in used else None
        return data

    @classmethod
    def from_fields(cls, f: JsonFields, format_version: int) -> "SamplerRecord":
        """The record of a format_version 2 file, or the DDIM record of a format_version 1 one."""
        if format_version == 1:
            return _from_version_1(f)
        name = f.string("name", SAMPLER_NAMES)
        timesteps = _numbers(f, "timesteps", minimum=0)
        if not timesteps or any(b > a for a, b in zip(timesteps, timesteps[1:])):
            raise f.fail("timesteps", "a non-empty list in non-increasing order", list(timesteps))
        # sigma samplers never reach alpha_cumprod 1: their record leaves it null
        final_alpha = f.number("final_alpha_cumprod", minimum=0, **({"default": 1.0} if name in SIGMA_SAMPLERS else {}))
        settings = SamplerSettings(
            name, f.string("timestep_spacing", TIMESTEP_SPACINGS), f.integer("steps_offset", minimum=0),
            set_alpha_to_one=final_alpha == 1.0, clip_sample=f.number("clip_sample", minimum=0, default=None), eta=f.number("eta", minimum=0, default=0.0),
            use_karras_sigmas=_boolean(f, "use_karras_sigmas", False),
            final_sigmas_type=f.string("final_sigmas_type", ("zero", "sigma_min"), default="zero"),
            solver_order=f.integer("solver_order", minimum=1, default=2),
            solver_type=f.string("solver_type", ("midpoint", "heun"), default="midpoint"),
            lower_order_final=_boolean(f, "lower_order_final", True), euler_at_final=_boolean(f, "euler_at_final", False),
            original_inference_steps=f.integer("original_inference_steps", minimum=1, default=50),
            timestep_scaling=f.number("timestep_scaling", minimum=0, default=10.0))
        if f.has("scheduler_class") and f.string("scheduler_class") != SCHEDULER_CLASSES[name]:
            raise f.fail("scheduler_class", SCHEDULER_CLASSES[name], f.data["scheduler_class"])
        if settings.eta > 1:
            raise f.fail("eta", "a number in [0, 1]", settings.eta)
        n = len(timesteps)
        if name not in SIGMA_SAMPLERS and not all(t.is_integer() for t in timesteps):
            raise f.fail("timesteps", f"whole numbers for {name} (it indexes alphas_cumprod)", list(timesteps))
        sigmas = previous = current = None
        if name in SIGMA_SAMPLERS:
            sigmas = _numbers(f, "sigmas", minimum=0)
            if len(sigmas) != n + 1:
                raise f.fail("sigmas", f"a list of {n + 1} numbers (one per timestep and the final sigma)", list(sigmas))
        else:
            previous = _counted(f, "previous_timesteps", n, minimum=-1)
            if name == "pndm":
                current = _counted(f, "current_timesteps", n, minimum=0)
        return cls(settings, f.integer("default_steps", minimum=1), timesteps, final_alpha,
                   f.number("init_noise_sigma", minimum=0, default=1.0), _boolean(f, "scale_model_input", False),
                   previous, current, sigmas)


def _from_version_1(f: JsonFields) -> SamplerRecord:
    """format_version 1: DDIM whose previous timestep is the next entry (-1 after the last)."""
    timesteps = f.integers("timesteps", minimum=0)
    if not timesteps or list(timesteps) != sorted(set(timesteps), reverse=True):
        raise f.fail("timesteps", "a non-empty list in decreasing order", list(timesteps))
    final_alpha = f.number("final_alpha_cumprod", minimum=0)
    settings = SamplerSettings(f.string("name", ("ddim",)), f.string("timestep_spacing", TIMESTEP_SPACINGS),
                               f.integer("steps_offset", minimum=0), set_alpha_to_one=final_alpha == 1.0, clip_sample=None,
                               eta=f.number("eta", minimum=0))
    return SamplerRecord(settings, f.integer("default_steps", minimum=1), tuple(float(t) for t in timesteps),
                         final_alpha, previous_timesteps=tuple(timesteps[1:]) + (-1,))


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _numbers(f: JsonFields, key: str, minimum: float) -> tuple[float, ...]:
    values = f.items(key)
    for i, v in enumerate(values):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < minimum:
            raise JsonFields({}, f.name(key), f.source).fail(i, f"a finite number >= {minimum}", v)
    return tuple(float(v) for v in values)


def _counted(f: JsonFields, key: str, n: int, minimum: int) -> tuple[int, ...]:
    values = f.integers(key, minimum=minimum)
    if len(values) != n:
        raise f.fail(key, f"a list of {n} integers (one per timestep)", list(values))
    return values


def _boolean(f: JsonFields, key: str, default: bool) -> bool:
    value = f.data.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise f.fail(key, "true or false", value)
    return value

