"""Text encoding for Stable Diffusion: tokenizer, prompt weights, CLIP text encoders, conversions."""
