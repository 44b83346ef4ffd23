"""Plain-PyTorch networks of Stable Diffusion (UNet, VAE) with the original LDM module names."""
