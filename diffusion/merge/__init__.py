"""Model merging and LoRA extraction, recorded as weight patches on MODEL and CLIP values."""
