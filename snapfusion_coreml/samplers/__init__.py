"""Samplers equal to diffusers' schedulers: DDIM, PNDM, DPM-Solver++, Euler, Euler ancestral, LCM
and TCD (docs/contracts.md section 3).

    settings = model_settings(scheduler, raw_scheduler_config, source)   # which sampler a model needs
    record = plan(settings, scheduler, steps)                            # its lists (pipeline.json)
    latent = run_sampler(record, scheduler, denoise, shape, generator)   # one generation

settings.py and record.py are torch-free; plan.py, steppers.py and run.py need torch.
"""

from .record import SamplerRecord
from .settings import SAMPLER_NAMES, SCHEDULER_CLASSES, SamplerSettings, check_sampler_name, model_settings

__all__ = ["SAMPLER_NAMES", "SCHEDULER_CLASSES", "SamplerRecord", "SamplerSettings", "check_sampler_name", "model_settings"]
