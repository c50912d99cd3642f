"""A small module that follows the detector contract, for exercising export and verification."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional


class ContractDetector(nn.Module):
    """images (B, 3, H, W) -> boxes (B, K, 4) xyxy in input pixels, scores (B, K), classes (B, K) int64.

    Anchor-free: every cell of a stride-8 grid predicts distances to the box sides and class
    scores; decoding, thresholding (padding rows score 0) and top-k are inside the graph.
    """

    def __init__(self, num_classes: int = 2, k: int = 20, threshold: float = 0.05, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.body = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.head = nn.Conv2d(16, 4 + num_classes, 3, stride=2, padding=1)
        self.k = k
        self.threshold = threshold
        self.stride = 8

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.head(functional.relu(self.body(functional.relu(self.stem(images)))))
        height, width = images.shape[2], images.shape[3]
        rows, cols = out.shape[2], out.shape[3]
        ys = (torch.arange(rows, dtype=torch.float32) + 0.5) * self.stride
        xs = (torch.arange(cols, dtype=torch.float32) + 0.5) * self.stride
        cy = ys[:, None].expand(rows, cols).reshape(1, -1)
        cx = xs[None, :].expand(rows, cols).reshape(1, -1)
        reg = functional.softplus(out[:, :4].flatten(2)) * self.stride  # (B, 4, N)
        boxes = torch.stack(
            [
                (cx - reg[:, 0]).clamp(min=0),
                (cy - reg[:, 1]).clamp(min=0),
                (cx + reg[:, 2]).clamp(max=width),
                (cy + reg[:, 3]).clamp(max=height),
            ],
            dim=2,
        )  # (B, N, 4)
        score, cls = out[:, 4:].flatten(2).sigmoid().max(dim=1)  # (B, N)
        score = torch.where(score >= self.threshold, score, torch.zeros_like(score))
        top, index = score.topk(self.k, dim=1)  # k <= cells at the sizes used here
        boxes = torch.gather(boxes, 1, index[..., None].expand(-1, -1, 4)) * (top > 0)[..., None]
        return boxes, top, torch.gather(cls, 1, index)


EXPORT_NAMES = (["images"], ["boxes", "scores", "classes"])
DYNAMIC_AXES = {name: {0: "batch"} for name in ["images", "boxes", "scores", "classes"]}


@pytest.fixture
def detector() -> ContractDetector:
    return ContractDetector().eval()


@pytest.fixture
def images_batches() -> list[tuple[torch.Tensor]]:
    generator = torch.Generator().manual_seed(7)
    return [(torch.rand(n, 3, 64, 64, generator=generator),) for n in (1, 3, 4)]
