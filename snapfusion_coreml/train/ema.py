"""Exponential moving average of the student's weights."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """shadow = d * shadow + (1 - d) * weight after every optimizer step, in float32.

    d = min(decay, (1 + n) / (10 + n)) after n updates (the warm-up of the official DDPM/LDM code),
    so a short run's EMA follows the weights instead of staying at the initialisation.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.shadow = {k: p.detach().float().clone() for k, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, p in model.named_parameters():
            if name in self.shadow:
                self.shadow[name].lerp_(p.detach().float(), 1.0 - d)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        for name, p in model.named_parameters():
            if name in self.shadow:
                p.copy_(self.shadow[name].to(p.dtype))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {**self.shadow, "__updates__": torch.tensor(self.updates)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.updates = int(state["__updates__"])
        for name in self.shadow:
            self.shadow[name] = state[name].float().clone()
