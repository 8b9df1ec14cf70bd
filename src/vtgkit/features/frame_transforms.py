"""Pixel transforms of the two official paths, with torch only (no torchvision).

* Feature-extraction path (spec r2-tuning.md §10.2): uint8 frames already resized and cropped by the decoder,
  ``/255`` then normalised with CLIP's exact mean/std (torchvision ``Normalize`` = subtract, then divide).
* Single-video inference tool (spec §14.1): ``/255``, centre square crop with offsets ``round((h − s)/2)``,
  ``round((w − s)/2)``, bilinear antialiased resize to size×size (torchvision's tensor ``resize`` default), then
  normalised with the **rounded** constants the tool uses (0.459 is not CLIP's 0.4578: reproduced on purpose).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# spec r2-tuning.md §14.1: tools/inference.py normalises with rounded constants; keep them.
INFERENCE_TOOL_MEAN = (0.481, 0.459, 0.408)
INFERENCE_TOOL_STD = (0.269, 0.261, 0.276)


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(B, 3, H, W) float in [0, 1] → ``(x − mean) / std`` per channel, in the input dtype."""
    mean_t = torch.tensor(mean, dtype=images.dtype).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=images.dtype).view(-1, 1, 1)
    return (images - mean_t) / std_t


def clip_input_from_uint8(frames: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Feature-extraction path: uint8 (B, 3, S, S) → float32 normalised with CLIP's exact constants."""
    frames = torch.as_tensor(frames)
    return normalize(frames.float() / 255, CLIP_MEAN, CLIP_STD)


def inference_tool_input(frame: np.ndarray, size: int = 224) -> torch.Tensor:
    """Single-video-tool path for one frame: uint8 (H, W, 3) → float32 (3, size, size)."""
    image = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float() / 255  # (3, H, W)
    height, width = image.shape[-2:]
    side = min(height, width)
    top, left = round((height - side) / 2), round((width - side) / 2)
    image = image[:, top : top + side, left : left + side]
    image = F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    return normalize(image, INFERENCE_TOOL_MEAN, INFERENCE_TOOL_STD)
