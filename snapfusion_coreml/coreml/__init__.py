"""Low-level Core ML pieces that convert, verify, inspect and the interpreter build on: the
coremltools import, which weights of a program are palettizable, reading a package without running
it (package.py) and feature descriptions (features.py). Nothing here imports the package but errors."""
