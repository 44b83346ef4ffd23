"""Image handling for /view and /upload: safe decoding, conversions, atomic deduplicated writes.

Uploads are decoded with Pillow before anything is written, so only real images in an allowed
format land in input/, and the file extension always matches the format. Writes go to a
temporary file first and are linked into place, so readers never see half a file and two uploads
can never overwrite each other by accident.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from engine.imagefiles import write_file_atomically

# Pillow format -> extensions we accept for it (first one is used when a name lacks one).
UPLOAD_FORMATS: dict[str, tuple[str, ...]] = {
    "PNG": (".png",), "JPEG": (".jpg", ".jpeg"), "MPO": (".jpg", ".jpeg"), "WEBP": (".webp",),
    "GIF": (".gif",), "BMP": (".bmp",), "TIFF": (".tif", ".tiff"),
}


class ImageRejected(ValueError):
    """The bytes are not an acceptable image (not decodable, wrong format or too large)."""


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    """Open and fully decode `data`, refusing unknown formats and decompression bombs."""
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageRejected("the file is not an image Pillow can read") from exc
    except Image.DecompressionBombError as exc:
        raise ImageRejected(str(exc)) from exc
    if image.format not in UPLOAD_FORMATS:
        raise ImageRejected(f"image format {image.format} is not accepted; use PNG, JPEG, WebP, "
                            "GIF, BMP or TIFF")
    width, height = image.size
    if width <= 0 or height <= 0 or width * height > max_pixels:
        raise ImageRejected(f"image is {width}x{height}; the limit is {max_pixels} pixels")
    try:
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageRejected(f"the image is damaged or truncated: {exc}") from exc
    return image


def upload_name(filename: str, image_format: str) -> str:
    """The name to store under: the client's name, with an extension matching the format."""
    if not filename or "/" in filename or "\\" in filename or filename.startswith(".") \
            or "\x00" in filename or not filename.isprintable():
        raise ImageRejected("the file name must be a plain name without folders, hidden dots or "
                            "control characters")
    extensions = UPLOAD_FORMATS[image_format]
    stem, suffix = os.path.splitext(filename)
    if suffix.lower() not in extensions:
        return filename + extensions[0]
    return filename


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def store_deduplicated(directory: Path, name: str, data: bytes, overwrite: bool) -> str:
    """Store `data` as `name` in `directory` (which must already be contained) and return the
    name used: an identical existing file (same sha256) is reused, a different one gets
    ' (1)', ' (2)'... appended unless `overwrite`."""
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()
    stem, suffix = os.path.splitext(name)
    for attempt in range(10_000):
        candidate = name if attempt == 0 else f"{stem} ({attempt}){suffix}"
        target = directory / candidate
        if target.is_symlink() or (target.exists() and not target.is_file()):
            continue
        if target.exists():
            if _sha256_file(target) == digest:
                return candidate
            if overwrite:
                write_file_atomically(target, data, replace=True)
                return candidate
            continue
        if write_file_atomically(target, data, replace=False):
            return candidate
    raise ImageRejected("too many files with this name already exist")


def apply_mask(original_path: Path, mask: Image.Image, max_pixels: int) -> bytes:
    """The original image with the mask's alpha channel, as PNG keeping the text chunks."""
    with original_path.open("rb") as handle:
        original = decode_image(handle.read(), max_pixels)
    metadata = PngImagePlugin.PngInfo()
    for key, value in (getattr(original, "text", None) or {}).items():
        metadata.add_text(key, value)
    alpha = mask.convert("RGBA").getchannel("A")
    if alpha.size != original.size:
        alpha = alpha.resize(original.size, Image.Resampling.LANCZOS)
    result = original.convert("RGBA")
    result.putalpha(alpha)
    out = io.BytesIO()
    result.save(out, format="PNG", pnginfo=metadata, compress_level=4)
    return out.getvalue()


def convert_for_view(path: Path, channel: str | None, preview: tuple[str, int] | None,
                     max_pixels: int) -> tuple[bytes, str]:
    """Re-encode an image for /view's `channel` and `preview` options; returns (bytes, mime)."""
    with path.open("rb") as handle:
        image = decode_image(handle.read(), max_pixels)
    if channel == "rgb":
        image = image.convert("RGB")
    elif channel == "a":
        alpha = image.getchannel("A") if "A" in image.getbands() else \
            Image.new("L", image.size, 255)
        image = Image.new("RGBA", image.size)
        image.putalpha(alpha)
    out = io.BytesIO()
    if preview is not None:
        image_format, quality = preview
        if image_format == "jpeg":
            image.convert("RGB").save(out, format="JPEG", quality=quality)
            return out.getvalue(), "image/jpeg"
        image.save(out, format="WEBP", quality=quality)
        return out.getvalue(), "image/webp"
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue(), "image/png"
