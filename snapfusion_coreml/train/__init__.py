"""The SnapFusion training recipe: losses (losses.py), v-prediction fine-tuning (vpred.py), step
distillation (distill_steps.py), decoder distillation (distill_decoder.py), robust training and
architecture evolution (evolve.py), on one accelerate-based loop (loop.py)."""
