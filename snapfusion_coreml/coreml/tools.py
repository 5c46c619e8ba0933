"""The coremltools import, and facts about the specifications it writes."""

from __future__ import annotations

import logging
import warnings

# Core ML specification version -> the deployment target that introduced it; the targets
# `--target` accepts are its values, oldest first
SPEC_VERSION_TARGETS = {7: "iOS16", 8: "iOS17", 9: "iOS18"}
TARGETS = tuple(SPEC_VERSION_TARGETS.values())


def quiet_coremltools():
    """Import coremltools without its import-time chatter about optional native parts."""
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="coremltools")
    import coremltools as ct

    logging.getLogger("coremltools").setLevel(logging.ERROR)
    return ct
