"""Sampling for discrete SD models: noise tables, schedules, samplers, guidance and the
KSampler pipeline (k-diffusion style: plain functions in name → function tables)."""

from diffusion.sampling.model_sampling import DiscreteModelSampling, model_sampling_from_config
from diffusion.sampling.pipeline import (
    Sampler,
    common_ksampler,
    ksampler_sigmas,
    model_sampling_for,
    run_sampler,
    sample,
    sample_custom,
)
from diffusion.sampling.samplers import SAMPLER_NAMES, SAMPLERS
from diffusion.sampling.schedulers import SCHEDULER_NAMES, SCHEDULERS, calculate_sigmas

__all__ = [
    "SAMPLERS",
    "SAMPLER_NAMES",
    "SCHEDULERS",
    "SCHEDULER_NAMES",
    "DiscreteModelSampling",
    "Sampler",
    "calculate_sigmas",
    "common_ksampler",
    "ksampler_sigmas",
    "model_sampling_for",
    "model_sampling_from_config",
    "run_sampler",
    "sample",
    "sample_custom",
]
