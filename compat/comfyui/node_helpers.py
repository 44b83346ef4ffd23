"""ComfyUI's `node_helpers` for node packs: Pillow retries and conditioning updates."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from diffusion.conditioning import with_options

T = TypeVar("T")


def pillow(fn: Callable[[Any], T], arg: Any) -> T:
    """Call a Pillow function; on a truncated-image OSError retry once tolerating truncation.

    ComfyUI flips `ImageFile.LOAD_TRUNCATED_IMAGES` for the rest of the process; we restore it.
    """
    try:
        return fn(arg)
    except OSError:  # includes PIL.UnidentifiedImageError
        from PIL import ImageFile

        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            return fn(arg)
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def conditioning_set_values(conditioning: list, values: dict[str, Any] | None = None,
                            append: bool = False) -> list:
    """A new CONDITIONING with `values` set on every entry's dict; the input is not mutated.

    With `append`, list values are added to an existing list under the same key.
    """
    values = values or {}
    if not append:
        return with_options(conditioning, **values)
    out = []
    for cond, options in conditioning:
        merged = dict(options)
        for key, value in values.items():
            existing = merged.get(key)
            merged[key] = (list(existing) + list(value)) if isinstance(existing, list) else value
        out.append([cond, merged])
    return out
