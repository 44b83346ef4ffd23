"""LoRA and LyCORIS: key maps from trainers' names to model keys, weight adapters, file loading."""
