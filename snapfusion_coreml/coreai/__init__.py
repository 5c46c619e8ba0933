"""Core AI (iOS / macOS 27): `.aimodel` assets run by Apple's own runtime (coreai-core) on this
machine. The converter side lives in convert/coreai_recipe.py; this part only loads, checks and
runs assets, so `verify`, `generate OUT` and the benchmarks share one runner.

Everything Apple ships here is the optional `[coreai]` extra: nothing is imported until an
`.aimodel` folder is converted or run (tools.require_coreai names the extra when it is missing).
"""

# Nothing is imported here: the CLI's flag checks import coreai.tools alone (no numpy, no Apple package).
