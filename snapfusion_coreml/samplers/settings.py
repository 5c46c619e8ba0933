"""Which sampler a model needs, read from its scheduler config the way diffusers reads it.

A diffusers folder names its scheduler class in `scheduler/scheduler_config.json` (`_class_name`);
`SamplerSettings.from_scheduler_config` maps the class and its fields onto one of the samplers of
this package, with the class's own defaults for absent keys (so `--sampler NAME` over a model's
config behaves like diffusers' `NewScheduler.from_config(pipe.scheduler.config)`). Features no
sampler here reproduces (thresholding, zero-terminal-SNR rescaling, trained betas, third-order
DPM-Solver, ...) are refused by name instead of being drawn wrong.

Torch-free: `convert` and `generate` check settings before importing torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..config import SchedulerConfig
from ..errors import UserError

# name -> diffusers class it reproduces (docs/contracts.md section 3)
SCHEDULER_CLASSES = {
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",
    "dpmsolver++": "DPMSolverMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_ancestral": "EulerAncestralDiscreteScheduler",
    "lcm": "LCMScheduler",
    "tcd": "TCDScheduler",
}
SAMPLER_NAMES = tuple(SCHEDULER_CLASSES)
_BY_CLASS = {cls: name for name, cls in SCHEDULER_CLASSES.items()}
SIGMA_SAMPLERS = ("dpmsolver++", "euler", "euler_ancestral")  # the rest step in alpha_cumprod terms
TCD_DEFAULT_ETA = 0.3  # gamma of the TCD authors' examples; diffusers' SD pipeline passes 0 unless told

# The defaults of each diffusers class's __init__ for the keys that change what we compute.
_CLASS_DEFAULTS: dict[str, dict[str, Any]] = {
    "ddim": {"timestep_spacing": "leading", "steps_offset": 0, "set_alpha_to_one": True, "clip_sample": True,
             "clip_sample_range": 1.0},
    "pndm": {"timestep_spacing": "leading", "steps_offset": 0, "set_alpha_to_one": False},
    "dpmsolver++": {"timestep_spacing": "linspace", "steps_offset": 0, "solver_order": 2, "solver_type": "midpoint",
                    "lower_order_final": True, "euler_at_final": False, "use_karras_sigmas": False,
                    "final_sigmas_type": "zero"},
    "euler": {"timestep_spacing": "linspace", "steps_offset": 0, "use_karras_sigmas": False, "final_sigmas_type": "zero"},
    "euler_ancestral": {"timestep_spacing": "linspace", "steps_offset": 0},
    "lcm": {"timestep_spacing": "leading", "steps_offset": 0, "set_alpha_to_one": True, "clip_sample": False,
            "clip_sample_range": 1.0, "original_inference_steps": 50, "timestep_scaling": 10.0},
    "tcd": {"timestep_spacing": "leading", "steps_offset": 0, "set_alpha_to_one": True,
            "original_inference_steps": 50, "timestep_scaling": 10.0},
}

# key -> the only value(s) we reproduce; anything else is refused with the key's name
_UNSUPPORTED: dict[str, tuple[Any, ...]] = {
    "thresholding": (False, None),
    "rescale_betas_zero_snr": (False, None),
    "trained_betas": (None,),
    "algorithm_type": ("dpmsolver++", None),
    "variance_type": (None,),
    "use_lu_lambdas": (False, None),
    "use_exponential_sigmas": (False, None),
    "use_beta_sigmas": (False, None),
    "use_flow_sigmas": (False, None),
    "timestep_type": ("discrete", None),
    "interpolation_type": ("linear", None),
    "skip_prk_steps": (True, None),
    "lambda_min_clipped": (float("-inf"), None),
}


@dataclass(frozen=True)
class SamplerSettings:
    """Everything that decides a sampler's lists and arithmetic, apart from the noise schedule and
    the step count. Fields a sampler does not use keep their defaults."""

    name: str  # SAMPLER_NAMES
    timestep_spacing: str = "leading"
    steps_offset: int = 0
    set_alpha_to_one: bool = True  # the end of sampling has alpha_cumprod 1, else alphas_cumprod[0]
    clip_sample: float | None = None  # ddim, lcm: clamp the x estimate to [-r, r]
    eta: float = 0.0  # tcd: gamma
    use_karras_sigmas: bool = False
    final_sigmas_type: str = "zero"  # "zero" | "sigma_min"
    solver_order: int = 2
    solver_type: str = "midpoint"  # "midpoint" | "heun"
    lower_order_final: bool = True
    euler_at_final: bool = False
    original_inference_steps: int = 50
    timestep_scaling: float = 10.0

    @property
    def scheduler_class(self) -> str:
        return SCHEDULER_CLASSES[self.name]

    @property
    def draws_noise(self) -> bool:
        """Whether sampling draws noise after the initial latents."""
        return self.name in ("euler_ancestral", "lcm") or (self.name == "tcd" and self.eta > 0)

    def with_eta(self, eta: float | None) -> "SamplerSettings":
        """A copy with gamma `eta` (tcd; ddim takes only 0), checked."""
        if eta is None:
            return self
        if self.name == "tcd":
            if not 0.0 <= eta <= 1.0:
                raise UserError(f"expected --eta in [0, 1] for tcd, got {eta}")
        elif eta != 0.0:
            raise UserError(f"expected --eta only with the tcd sampler (its gamma), got {eta} for {self.name}")
        return dataclasses.replace(self, eta=float(eta))

    def as_scheduler_config(self) -> dict[str, Any]:
        """The settings as a diffusers scheduler config (what `from_scheduler_config` reads back)."""
        return {"_class_name": self.scheduler_class, "timestep_spacing": self.timestep_spacing, "steps_offset": self.steps_offset,
                "set_alpha_to_one": self.set_alpha_to_one, "clip_sample": self.clip_sample is not None,
                "clip_sample_range": self.clip_sample or 1.0, "use_karras_sigmas": self.use_karras_sigmas,
                "final_sigmas_type": self.final_sigmas_type, "solver_order": self.solver_order, "solver_type": self.solver_type,
                "lower_order_final": self.lower_order_final, "euler_at_final": self.euler_at_final,
                "original_inference_steps": self.original_inference_steps, "timestep_scaling": self.timestep_scaling}

    @classmethod
    def from_scheduler_config(cls, config: dict[str, Any], source: str, override: str | None = None) -> "SamplerSettings":
        """The settings of a scheduler config dict as diffusers saves it (`_class_name` and fields).

        Without `_class_name` (this project's own folders) the sampler is trailing DDIM as the
        training recipe distils for (docs/training.md). `override` names another sampler
        (`--sampler`); the config's shared keys (spacing, offset, ...) carry over.
        """
        class_name = config.get("_class_name")
        if class_name is None:  # this project's folders: no clipping, the end at alpha 1
            config = {"clip_sample": False, "set_alpha_to_one": True, **config}
        if override is not None:
            name = check_sampler_name(override, "--sampler")
        elif class_name is None:
            return cls("ddim", str(config.get("timestep_spacing") or "trailing"), int(config.get("steps_offset") or 0),
                       set_alpha_to_one=True, clip_sample=None)
        elif class_name in _BY_CLASS:
            name = _BY_CLASS[class_name]
        else:
            raise UserError(f"unsupported scheduler {class_name!r} (in {source}); supported: "
                            f"{', '.join(SCHEDULER_CLASSES.values())} (or choose one with --sampler {'|'.join(SAMPLER_NAMES)})")
        for key, allowed in _UNSUPPORTED.items():
            value = config.get(key)
            if key in config and value not in allowed and not (key == "skip_prk_steps" and name != "pndm"):
                raise UserError(f"unsupported scheduler setting {key}={value!r} for {SCHEDULER_CLASSES[name]} "
                                f"(expected {allowed[0]!r}) (in {source})")
        solver_order = int(config.get("solver_order", 2))
        if name == "dpmsolver++" and solver_order not in (1, 2):
            raise UserError(f"unsupported scheduler setting solver_order={solver_order} for DPMSolverMultistepScheduler "
                            f"(expected 1 or 2) (in {source})")
        fields = {**_CLASS_DEFAULTS[name], **{k: v for k, v in config.items() if k in _CLASS_DEFAULTS[name] and v is not None}}
        clip = fields.pop("clip_sample", False)
        clip_range = float(fields.pop("clip_sample_range", 1.0))
        settings = cls(name, clip_sample=clip_range if clip else None,
                       eta=TCD_DEFAULT_ETA if name == "tcd" else 0.0, **fields)
        settings.check(source)
        return settings

    def check(self, source: str) -> None:
        if self.timestep_spacing not in ("leading", "trailing", "linspace"):
            raise UserError(f"expected timestep_spacing leading, trailing or linspace, got {self.timestep_spacing!r} (in {source})")
        if self.final_sigmas_type not in ("zero", "sigma_min"):
            raise UserError(f"expected final_sigmas_type zero or sigma_min, got {self.final_sigmas_type!r} (in {source})")
        if self.solver_type not in ("midpoint", "heun"):
            raise UserError(f"expected solver_type midpoint or heun, got {self.solver_type!r} (in {source})")
        if self.original_inference_steps < 1:
            raise UserError(f"expected original_inference_steps >= 1, got {self.original_inference_steps} (in {source})")


def unet_calls(name: str, steps: int) -> int:
    """UNet calls of `steps` sampling steps, without CFG: PLMS runs one more (its first step twice)."""
    return steps + 1 if name == "pndm" and steps > 1 else steps


def check_sampler_name(name: str, where: str = "--sampler") -> str:
    if name not in SCHEDULER_CLASSES:
        raise UserError(f"expected {where} one of {', '.join(SAMPLER_NAMES)}, got {name!r}")
    return name


def model_settings(scheduler: SchedulerConfig, scheduler_config: dict[str, Any] | None, source: str,
                   override: str | None = None, eta: float | None = None) -> SamplerSettings:
    """The sampler of a model: from its raw scheduler config when it has one (diffusers folders),
    else from this project's SchedulerConfig (trailing DDIM); `override`/`eta` as the CLI gives."""
    config = scheduler_config if scheduler_config is not None else scheduler.to_dict()
    return SamplerSettings.from_scheduler_config(config, source, override).with_eta(eta)
