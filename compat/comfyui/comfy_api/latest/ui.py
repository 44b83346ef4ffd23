"""ComfyUI's V3 `ui` module: what a V3 node shows in the editor (`NodeOutput(..., ui=...)`)."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["PreviewImage", "PreviewMask", "PreviewText", "SavedImages"]


class SavedImages:
    """Images already written: [{"filename", "subfolder", "type"}, ...]."""

    def __init__(self, results: list[dict[str, Any]]) -> None:
        self.results = results

    def as_dict(self) -> dict[str, Any]:
        return {"images": self.results}


class PreviewImage(SavedImages):
    """Writes `image` (IMAGE [B,H,W,C]) to the temp folder as our PreviewImage node does."""

    def __init__(self, image: torch.Tensor, animated: bool = False, cls: Any = None, **_: Any) -> None:
        from nodes.image import PreviewImage as Preview

        super().__init__(Preview().save_images(image)["ui"]["images"])


class PreviewMask(PreviewImage):
    """A MASK [B,H,W] shown as a grey image."""

    def __init__(self, mask: torch.Tensor, animated: bool = False, cls: Any = None, **_: Any) -> None:
        image = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).movedim(1, -1).expand(-1, -1, -1, 3)
        super().__init__(image)


class PreviewText:
    def __init__(self, value: str, **_: Any) -> None:
        self.value = value

    def as_dict(self) -> dict[str, Any]:
        return {"text": [self.value]}
