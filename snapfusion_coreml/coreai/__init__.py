"""Core AI (iOS / macOS 27): `.aimodel` assets run by Apple's own runtime (coreai-core) on this
machine. The converter side lives in convert/coreai_recipe.py; this part only loads, checks and
runs assets, so `verify`, `generate OUT` and the benchmarks share one runner.

Everything Apple ships here is the optional `[coreai]` extra: nothing is imported until an
`.aimodel` folder is converted or run (tools.require_coreai names the extra when it is missing).
"""

from .runtime import ASSET_SUFFIX, AssetRunner, check_asset
from .tools import FORMATS, require_coreai

__all__ = ["ASSET_SUFFIX", "AssetRunner", "FORMATS", "check_asset", "require_coreai"]
