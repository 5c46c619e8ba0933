"""The tensor protocol server of `snapfusion-coreml interpret OUT` (docs/contracts.md section 8).

Requests arrive on a binary stream, one at a time: a UTF-8 JSON line

    {"component": "unet", "inputs": [{"name": "sample", "dtype": "float32", "shape": [2, 4, 32, 32]}, ...]}

(with an optional "function": "image_512x768", one of pipeline.json's `sizes`, in a folder of several
sizes; absent or null: the default size) immediately followed by the raw little-endian C-order bytes of each input in the listed order
(product(shape) * 4 bytes each). The answer is a JSON line {"outputs": [{"name", "dtype",
"shape"}, ...]} followed by each output's bytes in that order, or {"error": "one line"} with
nothing after it. A bad request gets an error answer and the server reads the next one; the
server returns when the input stream ends.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from dataclasses import dataclass
from typing import BinaryIO, Callable

import numpy as np

from ..contracts.pipeline_json import tensors_at
from ..errors import UserError
from .folder import FolderRunner

DTYPES = {"float32": np.dtype("<f4"), "int32": np.dtype("<i4")}
MAX_REQUEST_BYTES = 1 << 32  # 4 GiB of inputs: far above any pipeline's (a batch-2 UNet at 128x128 latents is 1 MB)
MAX_HEADER_BYTES = 1 << 20


class RequestError(Exception):
    """A request the server answers with {"error": message}."""


class StreamEnded(Exception):
    """The input stream ended inside a request."""


@dataclass(frozen=True)
class TensorHeader:
    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * 4


@dataclass(frozen=True)
class Request:
    """One request header: the component, the size's function (None: the default) and its inputs."""

    component: str
    inputs: list[TensorHeader]
    function: str | None = None


def parse_header(line: bytes) -> Request:
    """The request of one header line; RequestError when malformed."""
    try:
        request = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(f"expected a JSON request line, got invalid JSON ({exc})") from None
    if not isinstance(request, dict):
        raise RequestError(f"expected a JSON object request, got {type(request).__name__}")
    component, items, function = request.get("component"), request.get("inputs"), request.get("function")
    if not isinstance(component, str):
        raise RequestError(f"expected \"component\" as a string, got {component!r}")
    if function is not None and (not isinstance(function, str) or not function):
        raise RequestError(f"expected \"function\" as a function name string (or absent), got {function!r}")
    if not isinstance(items, list):
        raise RequestError(f"expected \"inputs\" as a list, got {items!r}")
    headers = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise RequestError(f"expected inputs[{i}] as {{\"name\", \"dtype\", \"shape\"}}, got {item!r}")
        dtype, shape = item.get("dtype"), item.get("shape")
        if dtype not in DTYPES:
            raise RequestError(f"expected inputs[{i}].dtype float32 or int32, got {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise RequestError(f"expected inputs[{i}].shape as a list of non-negative integers, got {shape!r}")
        headers.append(TensorHeader(item["name"], dtype, tuple(shape)))
    if len({h.name for h in headers}) != len(headers):
        raise RequestError(f"expected distinct input names, got {[h.name for h in headers]}")
    return Request(component, headers, function)


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(min(left, 1 << 24))
        if not chunk:
            raise StreamEnded(f"expected {n} input bytes, got {n - left} before the input ended")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _check_inputs(folder: FolderRunner, component: str, headers: list[TensorHeader], function: str | None = None) -> None:
    """Names, shapes and dtypes against the component's pipeline.json declaration (at the size of
    `function`, one of pipeline.json's sizes; None: the default size)."""
    if component not in folder.components:
        raise RequestError(f"expected component from {sorted(folder.components)}, got {component!r}")
    manifest = folder.pipeline_manifest
    sizes = {size.function: size for size in manifest.size_list}
    if function is not None and function not in sizes:
        raise RequestError(f"expected function from {', '.join(sizes)}, got {function!r}")
    size = sizes[function] if function is not None else manifest.size_list[0]
    declared = {d.name: d for d in tensors_at(folder.declared_inputs(component), manifest.size_list[0], size)}
    given = {h.name: h for h in headers}
    if set(given) != set(declared):
        raise RequestError(f"expected {component} inputs {sorted(declared)}, got {sorted(given)}")
    for name, spec in declared.items():
        header = given[name]
        if header.shape != spec.shape:
            raise RequestError(f"expected {component} input {name} of shape {list(spec.shape)}, got {list(header.shape)}")
        want = spec.dtype
        if header.dtype != want:  # token ids: float32 in packages converted since 0.2 (Apple's type), int32 before
            raise RequestError(f"expected {component} input {name} as {want}, got {header.dtype}")


def answer(folder: FolderRunner, component: str, headers: list[TensorHeader], payload: list[bytes],
           function: str | None = None) -> bytes:
    """The response bytes for one complete request (an error line for any failure)."""
    try:
        _check_inputs(folder, component, headers, function)
        inputs = {h.name: np.frombuffer(data, DTYPES[h.dtype]).reshape(h.shape) for h, data in zip(headers, payload)}
        outputs = folder.run(component, inputs, function)
    except (RequestError, UserError, RuntimeError, MemoryError) as exc:
        return error_line(str(exc))
    parts, described = [], []
    for name, value in outputs.items():
        dtype = "int32" if np.asarray(value).dtype.kind in "iub" else "float32"
        array = np.ascontiguousarray(value, dtype=DTYPES[dtype])
        described.append({"name": name, "dtype": dtype, "shape": list(array.shape)})
        parts.append(array.tobytes())
    return (json.dumps({"outputs": described}) + "\n").encode() + b"".join(parts)


def error_line(message: str) -> bytes:
    return (json.dumps({"error": " ".join(message.split())}) + "\n").encode()


def serve(folder: FolderRunner, stdin: BinaryIO, stdout: BinaryIO, log: Callable[[str], None] = lambda _: None) -> int:
    """Answer requests from `stdin` on `stdout` until `stdin` ends; returns the request count.

    Raises StreamEnded when the input stops inside a request's bytes (its error is answered first).
    """
    served = 0
    while True:
        # 1. the request line (end of input between requests: done)
        line = stdin.readline(MAX_HEADER_BYTES)
        if not line:
            return served
        if not line.endswith(b"\n") and len(line) >= MAX_HEADER_BYTES:
            stdout.write(error_line(f"expected a request line under {MAX_HEADER_BYTES} bytes"))
            stdout.flush()
            stdin.readline()  # skip the rest of the overlong line
            continue
        if not line.strip():
            continue  # blank lines between requests are ignored
        start = time.perf_counter()
        # 2. the header, then exactly the bytes it announces
        try:
            request = parse_header(line)
            component, headers = request.component, request.inputs
            total = sum(h.nbytes for h in headers)
            if total > MAX_REQUEST_BYTES:
                raise RequestError(f"expected at most {MAX_REQUEST_BYTES} input bytes, got {total} announced")
        except RequestError as exc:
            stdout.write(error_line(str(exc)))
            stdout.flush()
            log(f"request {served + 1}: {exc}")
            served += 1
            continue
        try:
            payload = [_read_exact(stdin, h.nbytes) for h in headers]
        except StreamEnded as exc:
            stdout.write(error_line(str(exc)))
            stdout.flush()
            raise
        # 3. run and answer
        try:
            response = answer(folder, component, headers, payload, request.function)
        except Exception as exc:  # a bug: answer it, keep serving, keep the traceback in the log
            log(traceback.format_exc())
            response = error_line(f"internal error: {type(exc).__name__}: {exc}")
        stdout.write(response)
        stdout.flush()
        served += 1
        status = "error" if response.startswith(b'{"error"') else "ok"
        log(f"request {served}: {component} {status} in {time.perf_counter() - start:.2f} s")
