"""Linux verification: a CPU interpreter for Core ML programs (.mlpackage).

    program = load_program("out/Unet.mlpackage")
    outputs = run_program(program, {"sample": ..., "timestep": ..., "encoder_hidden_states": ...},
                          mode="fp16")

Core ML's runtime only exists on Apple platforms; this reads the package back into its MIL
program with coremltools and runs every op with the CPU kernels in `kernels/`, in float32
("fp32") or rounding every value to the dtype the program declares ("fp16").
"""

from .interpreter import MODES, run_program, supported_ops
from .program import Program, load_program

__all__ = ["MODES", "Program", "load_program", "run_program", "supported_ops"]
