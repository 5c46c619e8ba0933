"""Read an .mlpackage back into an executable list of steps (Linux or macOS, no Core ML runtime).

coremltools' milproto frontend rebuilds the MIL program from the package's model spec and its
weights folder (coreml/package.py); `load_program` then compiles it once into a flat list of
`Step`s, each bound to its kernel from the registry, so running it is a plain loop. Anything the interpreter cannot run
(an op without a kernel, control flow) is reported here, before any computation, as a
`UserError` naming the op type, the operation and the package.

A multifunction package (one function per image size, iOS 18) runs one named function
(`load_program(path, "image_512x768")`; default: the package's default function). Only that
function is read back: the others' constants are never loaded.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..coreml.package import load_mil, package_functions
from ..errors import UserError
from .kernels import KERNELS

FLOAT_TYPES = ("fp16", "fp32", "fp64")
_NUMPY_NAMES = {"fp16": "float16", "fp32": "float32", "fp64": "float64", "int8": "int8",
                "uint8": "uint8", "int16": "int16", "uint16": "uint16", "int32": "int32",
                "uint32": "uint32", "int64": "int64", "bool": "bool", "string": "str"}


@dataclass(frozen=True)
class Step:
    """One operation: `kernel(**args)` -> outputs, then the names no later step needs."""

    op_type: str
    name: str
    fn: Any
    args: tuple[tuple[str, bool, Any], ...]  # (param, is_list, var name | tuple of var names)
    outputs: tuple[str, ...]
    out_dtypes: tuple[str, ...]  # MIL dtype names ("fp16", "int32", "bool", ...)
    round_fp16: tuple[bool, ...]  # fp16 mode must round this output (not a pure value move)
    frees: tuple[str, ...] = ()


@dataclass
class Program:
    """A compiled Core ML program (one function of its package).

    inputs: name -> (shape, dtype) with numpy dtype names ("float32", "int32"); None marks a
    flexible dimension. outputs: the output names in the program's order.
    """

    package: Path
    inputs: dict[str, tuple[tuple[int | None, ...], str]]
    outputs: list[str]
    output_types: dict[str, tuple[tuple[int | None, ...], str]]
    input_dtypes: dict[str, str]  # name -> MIL dtype
    steps: list[Step]
    constexpr_steps: list[Step]
    var_dtypes: dict[str, str]
    _raw_consts: dict[str, Any] | None = field(default=None, repr=False)
    _weights: dict[str, Any] | None = field(default=None, repr=False)
    decoded_ops: int = 0  # constexpr decodes run so far (once per op: they are cached)
    function: str = "main"  # the package function it runs

    def op_counts(self) -> dict[str, int]:
        """How many operations of each type the program runs (constants excluded)."""
        counts: dict[str, int] = {}
        for step in self.constexpr_steps + self.steps:
            counts[step.op_type] = counts.get(step.op_type, 0) + 1
        return dict(sorted(counts.items()))


def _dtype_name(dtype) -> str:
    from coremltools.converters.mil.mil import types

    return types.builtin_to_string(dtype)


def _shape(var) -> tuple[int | None, ...]:
    return tuple(int(d) if isinstance(d, (int, np.integer)) else None for d in var.shape)


def _check_args(fn, op, package: Path) -> None:
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(op.inputs) - set(params))
    if unknown:
        raise UserError(f"unsupported parameter(s) {', '.join(unknown)} of Core ML op '{op.op_type}' "
                        f"(operation '{op.name}') in {package}")


def _compile(prog, package: Path, name: str) -> Program:
    func = prog.functions[name]
    var_dtypes: dict[str, str] = {}
    raw_consts: dict[str, Any] = {}
    steps: list[Step] = []
    constexpr_steps: list[Step] = []
    for var_name, var in func.inputs.items():
        var_dtypes[var_name] = _dtype_name(var.dtype)

    for op in func.operations:
        out_dtypes = tuple(_dtype_name(v.dtype) for v in op.outputs)
        for v, dt in zip(op.outputs, out_dtypes):
            var_dtypes[v.name] = dt
        if op.op_type == "const":
            raw_consts[op.outputs[0].name] = op.outputs[0].val
            continue
        kern = KERNELS.get(op.op_type)
        if kern is None or op.blocks:
            raise UserError(
                f"unsupported Core ML op '{op.op_type}' (operation '{op.name}') in {package}: "
                f"the interpreter has no kernel for it (see snapfusion_coreml.interpreter.execute.supported_ops())"
            )
        _check_args(kern.fn, op, package)
        args = []
        float_inputs = []
        for param, value in op.inputs.items():
            if isinstance(value, (list, tuple)):
                args.append((param, True, tuple(v.name for v in value)))
                float_inputs += [var_dtypes[v.name] for v in value if var_dtypes[v.name] in FLOAT_TYPES]
            else:
                args.append((param, False, value.name))
                if var_dtypes[value.name] in FLOAT_TYPES:
                    float_inputs.append(var_dtypes[value.name])
        exact = kern.exact and all(dt == "fp16" for dt in float_inputs)
        step = Step(op.op_type, op.name, kern.fn, tuple(args), tuple(v.name for v in op.outputs),
                    out_dtypes, tuple(dt == "fp16" and not exact for dt in out_dtypes))
        (constexpr_steps if kern.constexpr else steps).append(step)

    outputs = [v.name for v in func.outputs]
    steps = _with_frees(steps, set(outputs))
    return Program(
        package=package,
        inputs={n: (_shape(v), _NUMPY_NAMES.get(var_dtypes[n], var_dtypes[n])) for n, v in func.inputs.items()},
        outputs=outputs,
        output_types={v.name: (_shape(v), _NUMPY_NAMES.get(var_dtypes[v.name], var_dtypes[v.name]))
                      for v in func.outputs},
        input_dtypes={n: var_dtypes[n] for n in func.inputs},
        steps=steps,
        constexpr_steps=constexpr_steps,
        var_dtypes=var_dtypes,
        _raw_consts=raw_consts,
        function=name,
    )


def _with_frees(steps: list[Step], keep: set[str]) -> list[Step]:
    """Attach to every step the intermediate values it is the last reader of (freed after it)."""
    produced = {o for s in steps for o in s.outputs}
    last_use: dict[str, int] = {}
    for i, step in enumerate(steps):
        for _, is_list, ref in step.args:
            for n in (ref if is_list else (ref,)):
                last_use[n] = i
    frees: dict[int, list[str]] = {}
    for n, i in last_use.items():
        if n in produced and n not in keep:
            frees.setdefault(i, []).append(n)
    return [Step(**{**s.__dict__, "frees": tuple(frees.get(i, ()))}) for i, s in enumerate(steps)]


def load_program(path: Path | str, function: str | None = None) -> Program:
    """Read `path` (an .mlpackage) into an executable `Program` of one function (default: the
    package's default function). Weights decode on first run."""
    package = Path(path)
    name = function or package_functions(package)[1]
    return _compile(load_mil(package, name), package, name)


# --- constants and the weight cache ------------------------------------------------------------


def to_runtime(value, dtype: str):
    """A constant as the interpreter holds it: float32/int32/bool tensors, Python scalars."""
    if isinstance(value, str):
        return value
    arr = np.asarray(value)
    if arr.dtype.kind in "US":
        return str(arr.reshape(-1)[0]) if arr.size == 1 and arr.ndim == 0 else value
    if arr.ndim == 0:
        item = arr.item()
        if dtype == "bool":
            return bool(item)
        return float(item) if dtype in FLOAT_TYPES else int(item) if dtype != "string" else item
    if dtype in FLOAT_TYPES or arr.dtype.kind == "f":
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if dtype == "bool" or arr.dtype == np.bool_:
        return torch.from_numpy(np.ascontiguousarray(arr.astype(np.bool_)))
    if arr.dtype in (np.int64, np.uint32, np.uint64):
        return torch.from_numpy(np.ascontiguousarray(arr.astype(np.int64)))
    return torch.from_numpy(np.ascontiguousarray(arr.astype(np.int32)))


def weights(program: Program) -> dict[str, Any]:
    """Every constant, decoded once and cached on the program (later runs reuse it).

    Decoded weights (LUTs, quantised, sparse) take the dtype the program declares for them in
    both modes: they are what the package stores, not a computation whose precision varies.
    """
    if program._weights is not None:
        return program._weights
    raw = dict(program._raw_consts or {})
    for step in program.constexpr_steps:
        kwargs = {p: (tuple(raw[n] for n in ref) if is_list else raw[ref]) for p, is_list, ref in step.args}
        kwargs = {p: (_np_scalar(v)) for p, v in kwargs.items()}
        result = step.fn(**kwargs)
        outs = result if isinstance(result, tuple) else (result,)
        for n, dt, val in zip(step.outputs, step.out_dtypes, outs):
            raw[n] = val.astype(np.float16) if dt == "fp16" else val
        program.decoded_ops += 1
    needed = {n for s in program.steps for _, is_list, ref in s.args for n in (ref if is_list else (ref,))}
    needed |= set(program.outputs)
    program._weights = {n: to_runtime(v, program.var_dtypes[n]) for n, v in raw.items() if n in needed}
    program._raw_consts = None  # the runtime copies replace the loaded arrays
    return program._weights


def _np_scalar(value):
    """0-d arrays and numpy scalars as Python values (kernels treat them as parameters)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value
