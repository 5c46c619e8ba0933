"""The `verify` check of a converted folder: its packages run in the interpreter (interpreter/) and,
on macOS, in Core ML (native.py), compared with the PyTorch reference (reference.py) and with the
declared inputs and outputs (declared.py); check.py runs it, report.py holds and renders the result."""
