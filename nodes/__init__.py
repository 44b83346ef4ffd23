"""Built-in nodes. Every module here that exports NODE_CLASS_MAPPINGS is registered at start-up
by app.bootstrap.create_runtime (discovered with pkgutil; nothing is registered at import)."""

# ComfyUI's `nodes.MAX_RESOLUTION`: custom node packs commonly read it as `nodes.MAX_RESOLUTION`.
MAX_RESOLUTION = 16384
