"""CLIP vision encoders (ViT-L/14, ViT-H/14, ViT-bigG) and what they feed: unCLIP and revision.

Modules: ``loader`` (files in HF or OpenCLIP layout → transformers' CLIPVisionModelWithProjection),
``encoder`` (the CLIP_VISION value and its CLIP_VISION_OUTPUT), ``unclip`` (image embeds as ``y``
or SDXL pooled conditioning; no transformers import, so the model code can use it cheaply).
"""
