"""PyTorch model definitions: a UNet of any block layout (unet.py, blocks.py, attention.py,
layers.py), the VAE decoder with a width multiplier (vae_decoder.py, decoder_pruning.py), the CLIP
text encoder (text_encoder.py; its tokenizer is ../tokenizer.py), weights on disk (checkpoint.py, loading.py) and
layout-to-layout weight mapping (unet_mapping.py)."""
