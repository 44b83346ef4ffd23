"""ComfyUI's `comfy_extras.nodes_model_advanced` (model sampling), backed by Latentgraph's built-in nodes."""

from compat.builtin_nodes import module_getattr

__getattr__ = module_getattr(__name__, {"ModelSamplingDiscrete": "ModelSamplingDiscrete", "ModelSamplingContinuousEDM": "ModelSamplingContinuousEDM", "ModelSamplingContinuousV": "ModelSamplingContinuousV"})
