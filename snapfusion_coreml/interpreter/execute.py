"""Run a compiled Core ML program op by op on the CPU.

Two modes:
  "fp32"  reference math: every tensor is computed and kept in float32, whatever the program
          declares (an fp16 program then shows what its math gives without fp16 storage);
  "fp16"  fp16-faithful: every op computes in float32 and its outputs are rounded to the dtype
          the program declares, so an fp16 value overflows to inf (and then NaN) exactly where
          it leaves fp16's range, as it would on the device. Ops that only move values
          (reshape, slices, concat, ...) of fp16 inputs skip the (no-op) rounding.
Integer outputs always follow the declared width (int16 wraps, uint16 masks), bools are bools.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError, expected
from .kernels import KERNELS
from .kernels.registry import tensor
from .program import FLOAT_TYPES, Program, weights

MODES = ("fp32", "fp16")


def supported_ops() -> set[str]:
    """Every MIL op type the interpreter can run (`const` included)."""
    return set(KERNELS) | {"const"}


def coerce(value, dtype: str, round_fp16: bool, inputs: tuple = ()) -> torch.Tensor:
    """A kernel result as the interpreter stores a value of MIL dtype `dtype`.

    `inputs` are the op's input values: a result sharing memory with one of them is rounded
    into a copy, any other result in place (it is the kernel's own fresh tensor).
    """
    t = tensor(value)
    if dtype in FLOAT_TYPES:
        if t.dtype != torch.float32:
            t = t.to(torch.float32)
        elif round_fp16 and not _shares_memory(t, inputs):
            return t.copy_(t.to(torch.float16))
        return t.to(torch.float16).to(torch.float32) if round_fp16 else t
    if dtype == "bool":
        return t if t.dtype == torch.bool else t.to(torch.bool)
    if dtype == "int32":
        return t if t.dtype == torch.int32 else t.to(torch.int32)
    if dtype in ("int16", "int8"):
        return t.to(torch.int16 if dtype == "int16" else torch.int8).to(torch.int32)
    if dtype in ("uint16", "uint8"):
        return (t.to(torch.int64) & (0xFFFF if dtype == "uint16" else 0xFF)).to(torch.int32)
    if dtype in ("int64", "uint32", "uint64"):
        return t.to(torch.int64)
    return t


def _shares_memory(t: torch.Tensor, inputs: tuple) -> bool:
    ptr = t.untyped_storage().data_ptr()
    for value in inputs:
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, torch.Tensor) and v.untyped_storage().data_ptr() == ptr:
                return True
    return False


def _inputs(program: Program, given: dict[str, np.ndarray], mode: str) -> dict[str, torch.Tensor]:
    where = str(program.package)
    if set(given) != set(program.inputs):
        raise expected(f"inputs {sorted(program.inputs)}", f"{sorted(given)}", where)
    env = {}
    for name, (shape, _) in program.inputs.items():
        arr = np.asarray(given[name])
        if len(arr.shape) != len(shape) or any(d is not None and d != a for d, a in zip(shape, arr.shape)):
            raise expected(f"{name} of shape {tuple(shape)}", f"{tuple(arr.shape)}", where)
        dtype = program.input_dtypes[name]
        if dtype not in FLOAT_TYPES and dtype != "bool" and arr.dtype.kind not in "iub":
            raise expected(f"{name} as integers ({dtype})", f"{arr.dtype}", where)
        t = torch.from_numpy(np.ascontiguousarray(arr.astype(np.float32) if dtype in FLOAT_TYPES else arr))
        # an fp32 input stays fp32 (token ids above 2048 are exact only there); the program's own
        # casts round it where it computes in fp16
        env[name] = coerce(t, dtype, mode == "fp16" and dtype == "fp16")
    return env


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = tensor(t)
    if t.is_floating_point():
        return t.to(torch.float32).numpy().copy()
    if t.dtype == torch.bool:
        return t.numpy().copy()
    return t.to(torch.int32).numpy().copy()


@torch.inference_mode()
def run_program(program: Program, inputs: dict[str, np.ndarray], mode: str = "fp32",
                weights_override: dict[str, torch.Tensor] | None = None) -> dict[str, np.ndarray]:
    """Run `program` on numpy `inputs`; returns every output as numpy (floats as float32).

    Args:
        program: from `load_program`.
        inputs: name -> array with the shapes of `program.inputs`.
        mode: "fp32" (reference math) or "fp16" (round to the program's declared dtypes).
        weights_override: constant name -> float32 tensor of the same shape used instead of the
            stored constant for this run only (per-layer sensitivity analysis).
    """
    if mode not in MODES:
        raise expected("mode 'fp32' or 'fp16'", repr(mode))
    env = dict(weights(program))
    for name, value in (weights_override or {}).items():
        if name not in env or tuple(env[name].shape) != tuple(value.shape):
            got = "no such constant" if name not in env else f"shape {tuple(value.shape)}"
            raise expected(f"constant {name} of shape {tuple(env[name].shape) if name in env else '?'}", got,
                           str(program.package))
        env[name] = value
    env.update(_inputs(program, inputs, mode))
    fp16 = mode == "fp16"
    for step in program.steps:
        kwargs = {p: (tuple(env[n] for n in ref) if is_list else env[ref]) for p, is_list, ref in step.args}
        try:
            result = step.fn(**kwargs)
        except UserError:
            raise
        except Exception as e:
            raise RuntimeError(
                f"Core ML op '{step.op_type}' (operation '{step.name}') failed in {program.package}: {e}"
            ) from e
        outs = result if isinstance(result, tuple) else (result,)
        for name, dtype, rnd, value in zip(step.outputs, step.out_dtypes, step.round_fp16, outs):
            env[name] = coerce(value, dtype, fp16 and rnd, tuple(kwargs.values()) if fp16 and rnd else ())
        for name in step.frees:
            del env[name]
    return {name: _to_numpy(env[name]) for name in program.outputs}


def run_chain(programs: list[Program], inputs: dict[str, np.ndarray], mode: str) -> dict[str, np.ndarray]:
    """Run programs in order (a chunked UNet); each takes what it names from the inputs and the
    earlier programs' outputs. Returns the last program's outputs."""
    available = dict(inputs)
    outputs: dict[str, np.ndarray] = {}
    for program in programs:
        missing = sorted(set(program.inputs) - set(available))
        if missing:
            raise expected(f"inputs {missing} from the component inputs or an earlier chunk",
                           f"only {sorted(available)}", str(program.package))
        outputs = run_program(program, {n: available[n] for n in program.inputs}, mode)
        available.update(outputs)
    return outputs
