"""snapfusion-coreml: SnapFusion-style fast text-to-image for iPhones, from training to Core ML."""

__version__ = "0.2.0"
