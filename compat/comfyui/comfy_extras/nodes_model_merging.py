"""ComfyUI's `comfy_extras.nodes_model_merging` (model merging), backed by Latentgraph's built-in nodes."""

from compat.builtin_nodes import module_getattr

__getattr__ = module_getattr(__name__, {"ModelMergeSimple": "ModelMergeSimple", "ModelSubtract": "ModelMergeSubtract", "ModelAdd": "ModelMergeAdd", "CLIPMergeSimple": "CLIPMergeSimple", "CLIPSubtract": "CLIPMergeSubtract", "CLIPAdd": "CLIPMergeAdd", "ModelMergeBlocks": "ModelMergeBlocks", "CheckpointSave": "CheckpointSave", "CLIPSave": "CLIPSave", "VAESave": "VAESave", "ModelSave": "ModelSave"})
