"""ComfyUI's V3 node API (`comfy_api.latest`) for node packs: V3 nodes run as V1 nodes here."""
