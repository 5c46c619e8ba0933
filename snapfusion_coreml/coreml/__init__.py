"""Low-level Core ML pieces that both `convert` and `verify` build on: the coremltools import and
which weights of a program are palettizable. Nothing here imports `convert` or `verify`."""
