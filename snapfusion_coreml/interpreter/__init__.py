"""A CPU interpreter for Core ML programs (.mlpackage), run on Linux: program.py reads a package into
steps, execute.py runs them with the kernels of kernels/ ("fp32" or "fp16" mode), folder.py runs a
converted folder's packages, as a pipeline backend (backend.py: `generate OUT`, `eval`) and as the
tensor server of docs/contracts.md section 8 (server.py: `interpret OUT`). Nothing here imports verify/."""
