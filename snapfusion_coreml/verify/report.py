"""What `verify` found: one row per (component output, mode), rendered as a table or JSON.

Modes: "fp32" and "fp16" are the interpreter's (interpreter/execute.py), "coreml" is Core ML's own
MLModel.predict (macOS only). Every row compares against the PyTorch reference with
`metrics.compare`; a row passes when its PSNR is at least the threshold and no value is
NaN or inf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..metrics import Comparison


@dataclass(frozen=True)
class OutputCheck:
    component: str  # "text_encoder" | "unet" | "decoder"
    packages: tuple[str, ...]  # the package(s) run, in order (two for a chunked UNet)
    output: str
    mode: str  # "fp32" | "fp16" | "coreml"
    shape: tuple[int, ...]
    comparison: Comparison
    seconds: float  # running the package(s) once in this mode
    function: str = "main"  # the package function run: image_{H}x{W} in a several-size folder

    @property
    def label(self) -> str:
        """The component, with the function where its package has several."""
        return self.component if self.function == "main" else f"{self.component} {self.function}"

    def ok(self, min_psnr: float) -> bool:
        return bool(self.comparison.ok(min_psnr))

    def to_dict(self, min_psnr: float) -> dict:
        c = self.comparison
        return {"component": self.component, "packages": list(self.packages), "function": self.function,
                "output": self.output,
                "mode": self.mode, "shape": list(self.shape),
                "psnr_db": round(float(c.psnr_db), 3) if math.isfinite(c.psnr_db) else None,
                "identical": bool(c.psnr_db == math.inf), "max_abs_error": float(c.max_abs_error),
                "non_finite": int(c.non_finite),
                "seconds": round(self.seconds, 3), "ok": self.ok(min_psnr)}


@dataclass
class VerifyReport:
    folder: str
    reference: str  # the PyTorch model the outputs were compared with
    min_psnr: float
    modes: tuple[str, ...]
    checks: list[OutputCheck] = field(default_factory=list)
    integrity: list[str] = field(default_factory=list)  # packages whose sha256 differs from pipeline.json
    notes: list[str] = field(default_factory=list)  # e.g. why the Core ML runtime was not run

    @property
    def ok(self) -> bool:
        return not self.integrity and all(c.ok(self.min_psnr) for c in self.checks)

    def failures(self) -> list[str]:
        """One short phrase per problem, for the error message."""
        found = list(self.integrity)
        for c in self.checks:
            if c.ok(self.min_psnr):
                continue
            if c.comparison.non_finite:
                found.append(f"{c.label} {c.output} ({c.mode}): {c.comparison.non_finite} non-finite values")
            else:
                found.append(f"{c.label} {c.output} ({c.mode}): {c.comparison.psnr_db:.1f} dB < {self.min_psnr:g} dB")
        return found

    def failure_message(self) -> str:
        problems = self.failures()
        return (f"verification of {self.folder} failed ({len(problems)} problem{'s' * (len(problems) != 1)}): "
                + "; ".join(problems))

    def to_dict(self) -> dict:
        """JSON-ready; a PSNR that is not finite is null ("identical" tells +inf apart)."""
        return {"folder": self.folder, "reference": self.reference, "min_psnr_db": self.min_psnr,
                "modes": list(self.modes), "ok": self.ok, "integrity": self.integrity, "notes": self.notes,
                "checks": [c.to_dict(self.min_psnr) for c in self.checks]}


def render(report: VerifyReport, console) -> None:
    """Print the report as a rich table (one row per output and mode) and its notes."""
    from rich.table import Table
    from rich.text import Text

    table = Table()
    for column, justify in (("component", "left"), ("output", "left"), ("mode", "left"), ("PSNR dB", "right"),
                            ("max err", "right"), ("NaN/inf", "right"), ("time", "right"), ("result", "left")):
        table.add_column(column, justify=justify, no_wrap=justify == "left")
    for c in report.checks:
        psnr = c.comparison.psnr_db
        text = "identical" if psnr == math.inf else f"{psnr:.1f}"
        result = Text("ok", style="green") if c.ok(report.min_psnr) else Text("FAIL", style="red")
        table.add_row(c.label, c.output, c.mode, text, f"{c.comparison.max_abs_error:.3g}",
                      str(c.comparison.non_finite), f"{c.seconds:.2f} s", result)
    console.print(Text(f"{report.folder} vs {report.reference} (pass: >= {report.min_psnr:g} dB, all finite)"))
    console.print(table)
    for problem in report.integrity:
        console.print(Text.assemble(("integrity:", "red"), f" {problem}"), highlight=False)
    for note in report.notes:
        console.print(Text(f"note: {note}"), highlight=False)
