"""ComfyUI's `comfy_extras.nodes_latent` (latent arithmetic), backed by Latentgraph's built-in nodes."""

from compat.builtin_nodes import module_getattr

__getattr__ = module_getattr(__name__, {"LatentAdd": "LatentAdd", "LatentSubtract": "LatentSubtract", "LatentMultiply": "LatentMultiply", "LatentInterpolate": "LatentInterpolate", "LatentConcat": "LatentConcat", "LatentCut": "LatentCut", "LatentBatch": "LatentBatch", "LatentBatchSeedBehavior": "LatentBatchSeedBehavior", "LatentApplyOperation": "LatentApplyOperation", "LatentApplyOperationCFG": "LatentApplyOperationCFG", "LatentOperationTonemapReinhard": "LatentOperationTonemapReinhard", "LatentOperationSharpen": "LatentOperationSharpen"})
