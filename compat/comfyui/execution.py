"""ComfyUI's top-level `execution` module, as far as packs use it from outside the executor.

Popular packs import it (rgthree-comfy does at start-up) to reach the executor's internals and
patch them. Latentgraph's executor (engine.executor) is not ComfyUI's, so its internals are not
offered; what exists is `ExecutionBlocker`. A pack that reaches for more gets AttributeError
naming what is missing, at the line that needs it.
"""

from engine.blocker import ExecutionBlocker

__all__ = ["ExecutionBlocker"]
