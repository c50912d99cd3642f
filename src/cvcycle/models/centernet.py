"""The network of the built-in detector: a small CenterNet (objects as heatmap peaks) and its loss.

A strided CNN down to stride 32 (so even a tall person falls inside one cell's receptive field)
with a light top-down neck gives features at the output stride, 8 or 4. Two heads predict, per
class, a heatmap of object centres and, per cell, the distances from the cell to the four box
sides. As in TTFNet, the box head learns from every cell near an object's centre (GIoU loss,
Gaussian-weighted), not just the centre cell, which makes it learn far faster from few boxes.
``forward`` decodes boxes inside the graph (3x3 max-pool peak suppression, then top-k), so the
exported ONNX model returns the detector contract of :mod:`cvcycle.models.predictor` directly.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - PyTorch's own convention
from torch import nn

# Output strides the network can be built with: 8 costs a third less per training step on a CPU,
# 4 finds small objects better.
STRIDES = (4, 8)
# "separate": the last merge of the neck is smoothed by a 3x3 convolution, then the heatmap and the
# box head each have a 3x3 convolution of their own (every version before the choice).
# "shared": one 3x3 convolution after the last merge feeds both heads: two fewer convolutions at
# the finest level, where they cost most. Over five synthetic worlds, 60 s runs took ~20% more
# steps and reached a higher mAP50 (bench/detector.py).
HEADS = ("separate", "shared")
# Gaussian spread relative to the box (TTFNet's beta): the heat and regression area of a box.
_BETA = 0.54
# Log-distances are clamped when decoding so a wild prediction cannot overflow exp().
_MAX_LOG_DISTANCE = 8.0
_BOX_LOSS_WEIGHT = 5.0
_NMS_IOU = 0.5
# Peaks scoring below this are background noise, returned as padding rows. Without the floor the
# tail of the top-k is hundreds of near-equal noise scores whose order differs between runtimes.
MIN_SCORE = 1e-3


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class CenterNet(nn.Module):
    """Anchor-free detector; ``width`` is the channel count of the first stage (16 on a CPU, 64 on a GPU)."""

    def __init__(
        self,
        classes: tuple[str, ...],
        width: int,
        input_size: tuple[int, int],
        max_detections: int,
        stride: int = 4,
        head: str = "separate",
    ):
        super().__init__()
        height, wide = input_size
        if height % 32 or wide % 32:
            raise ValueError(f"input size {height}x{wide} must be a multiple of 32 in both directions")
        if stride not in STRIDES:
            raise ValueError(f"output stride {stride} is not one of {', '.join(map(str, STRIDES))}")
        if head not in HEADS:
            raise ValueError(f"head {head!r} is not one of {', '.join(HEADS)}")
        self.classes = classes
        self.input_size = input_size
        self.max_detections = max_detections
        self.stride = stride
        # top-k cannot ask for more boxes than the heatmap has cells.
        self.top_k = min(max_detections, len(classes) * (height // stride) * (wide // stride))
        w = width
        # One convolution at stride 2: a second one at this resolution cost 11% of a CPU step and
        # bought no accuracy within the 60 s budget.
        self.stage1 = nn.Sequential(_conv(3, w, 2))  # stride 2
        self.stage2 = nn.Sequential(_conv(w, 2 * w, 2), _conv(2 * w, 2 * w))  # stride 4
        self.stage3 = nn.Sequential(_conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w))  # stride 8
        self.stage4 = nn.Sequential(_conv(4 * w, 4 * w, 2), _conv(4 * w, 4 * w))  # stride 16
        self.stage5 = nn.Sequential(_conv(4 * w, 4 * w, 2), _conv(4 * w, 4 * w))  # stride 32
        # The neck merges strides 32 -> 16 -> 8 (-> 4): one lateral per level it reads, finest first.
        levels = (2 * w, 4 * w, 4 * w, 4 * w)[STRIDES.index(stride) :]
        self.lateral = nn.ModuleList(nn.Conv2d(c, 2 * w, 1) for c in levels)
        shared = head == "shared"
        self.smooth = nn.ModuleList(_conv(2 * w, 2 * w) for _ in levels[1 + shared :])
        self.shared: nn.Module = _conv(2 * w, 2 * w) if shared else nn.Identity()
        own = () if shared else (_conv(2 * w, 2 * w),)
        self.heatmap = nn.Sequential(*own, nn.Conv2d(2 * w, len(classes), 1))
        own = () if shared else (_conv(2 * w, 2 * w),)
        self.box = nn.Sequential(*own, nn.Conv2d(2 * w, 4, 1))
        # Start every cell at a 1% object prior, as focal-loss detectors do, so early loss is sane.
        heat_out = self.heatmap[-1]
        assert isinstance(heat_out, nn.Conv2d) and heat_out.bias is not None
        nn.init.constant_(heat_out.bias, -math.log((1 - 0.01) / 0.01))

    def maps(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw head outputs at the output stride: heatmap logits (B,C,h,w), log side distances in
        cells (B,4,h,w)."""
        c2 = self.stage2(self.stage1(images))
        c3 = self.stage3(c2)
        c4 = self.stage4(c3)
        c5 = self.stage5(c4)
        levels = (c2, c3, c4, c5)[-len(self.lateral) :]
        top = self.lateral[-1](c5)
        for i, (lateral, skip) in enumerate(zip(self.lateral[-2::-1], levels[-2::-1], strict=True)):
            top = lateral(skip) + F.interpolate(top, scale_factor=2.0)
            if i < len(self.smooth):  # a shared head has no smoothing after the last merge
                top = self.smooth[i](top)
        top = self.shared(top)
        return self.heatmap(top), self.box(top)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``boxes`` (B,K,4) xyxy in input pixels, ``scores`` (B,K), ``classes`` (B,K) int64."""
        heat_logits, distances = self.maps(images)
        return decode(heat_logits, distances, self.top_k, self.input_size, self.stride)


def _cell_boxes(distances: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, stride: int) -> torch.Tensor:
    """Boxes xyxy in input pixels from log side distances (..., 4) at cells (xs, ys)."""
    d = torch.exp(distances.clamp(max=_MAX_LOG_DISTANCE)) * stride
    cx = (xs + 0.5) * stride
    cy = (ys + 0.5) * stride
    return torch.stack([cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]], dim=-1)


def decode(
    heat_logits: torch.Tensor, distances: torch.Tensor, k: int, input_size: tuple[int, int], stride: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Heatmap peaks to boxes, written with ONNX-exportable operators and a symbolic batch size.

    ``k`` is at most classes x cells (``CenterNet.top_k``).
    """
    heat = torch.sigmoid(heat_logits)
    peaks = F.max_pool2d(heat, 3, stride=1, padding=1)
    heat = heat * (peaks == heat).to(heat.dtype)
    height, width = input_size
    h, w = height // stride, width // stride
    # Python ints from the configured sizes, so the traced graph has constants, not shape arithmetic.
    cells = h * w
    scores, index = torch.topk(heat.flatten(1), k, dim=1)
    classes = torch.div(index, cells, rounding_mode="floor")
    cell = index - classes * cells
    ys = torch.div(cell, w, rounding_mode="floor")
    xs = cell - ys * w
    picked = torch.gather(distances.flatten(2), 2, cell.unsqueeze(1).expand(-1, 4, -1)).transpose(1, 2)
    boxes = _cell_boxes(picked, xs.to(heat.dtype), ys.to(heat.dtype), stride)
    xs_clamped = boxes[..., 0::2].clamp(0, width)
    ys_clamped = boxes[..., 1::2].clamp(0, height)
    boxes = torch.stack(
        [xs_clamped[..., 0], ys_clamped[..., 0], xs_clamped[..., 1], ys_clamped[..., 1]], dim=-1
    )
    return suppress_duplicates(boxes, scores, classes.to(torch.int64))


def _pairwise_iou_tensor(boxes: torch.Tensor) -> torch.Tensor:
    """IoU of every pair of xyxy boxes within each image: (B,K,4) -> (B,K,K).

    The tensor form of ``cvcycle.boxes.iou``: it runs inside ``forward``, so it is exported into
    the ONNX graph and runs in ONNX Runtime or TensorRT, where no Python function can be called.
    """
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    lt = torch.maximum(boxes.unsqueeze(2)[..., :2], boxes.unsqueeze(1)[..., :2])
    rb = torch.minimum(boxes.unsqueeze(2)[..., 2:], boxes.unsqueeze(1)[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    return inter / (area.unsqueeze(2) + area.unsqueeze(1) - inter).clamp(min=1e-6)


def suppress_duplicates(
    boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fast NMS (YOLACT): zero the score of a box overlapping a higher-scoring box of its class,
    and of a box scoring below ``MIN_SCORE``.

    Peak suppression alone leaves a second peak on a long, lying body; this removes such doubles
    with plain tensor operators (no NonMaxSuppression op, so every runtime agrees). Rows stay
    sorted by score; suppressed and empty rows come last with score, box and class all 0.
    """
    k = boxes.shape[1]
    iou = _pairwise_iou_tensor(boxes)
    same = (classes.unsqueeze(2) == classes.unsqueeze(1)).to(iou.dtype)
    # Scores come sorted from topk, so "higher-scoring" is "earlier": keep the strict upper triangle.
    earlier = torch.ones(k, k, dtype=iou.dtype).triu(1)
    overlap = (iou * same * earlier).amax(dim=1)  # per box: its largest IoU with an earlier box
    keep = (overlap <= _NMS_IOU) & (scores >= MIN_SCORE)
    scores = scores * keep.to(scores.dtype)
    scores, order = torch.topk(scores, k, dim=1)
    # Padding rows (score 0) come in no defined order; zeroing them makes every runtime agree.
    real = scores > 0
    boxes = torch.gather(boxes, 1, order.unsqueeze(2).expand(-1, -1, 4)) * real.unsqueeze(2).to(boxes.dtype)
    return boxes, scores, torch.gather(classes, 1, order) * real.to(classes.dtype)


def draw_targets(
    boxes: list[np.ndarray],
    class_ids: list[np.ndarray],
    num_classes: int,
    input_size: tuple[int, int],
    stride: int,
) -> dict[str, torch.Tensor]:
    """Training targets for a batch (boxes xyxy in input pixels).

    ``heat``: per class an elliptical Gaussian at each box centre, spread proportional to the box;
    ``box``: at every cell under a box's Gaussian, that box (smaller boxes win where they overlap);
    ``weight``: the Gaussian there, scaled so each box weighs log(area) in total (TTFNet).
    """
    h, w = input_size[0] // stride, input_size[1] // stride
    batch = len(boxes)
    heat = np.zeros((batch, num_classes, h, w), np.float32)
    box_target = np.zeros((batch, h, w, 4), np.float32)
    weight = np.zeros((batch, h, w), np.float32)
    ys, xs = np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :]
    for b, (image_boxes, image_classes) in enumerate(zip(boxes, class_ids, strict=True)):
        areas = (image_boxes[:, 2] - image_boxes[:, 0]) * (image_boxes[:, 3] - image_boxes[:, 1])
        for j in np.argsort(-areas):  # large first, so small boxes overwrite them
            box, cls = image_boxes[j], int(image_classes[j])
            bw, bh = (box[2] - box[0]) / stride, (box[3] - box[1]) / stride
            if bw <= 0 or bh <= 0:
                continue
            cx, cy = (box[0] + box[2]) / 2 / stride, (box[1] + box[3]) / 2 / stride
            ix, iy = min(int(cx), w - 1), min(int(cy), h - 1)
            sx, sy = max(bw * _BETA / 6, 0.4), max(bh * _BETA / 6, 0.4)
            gauss = np.exp(-((xs - ix) ** 2) / (2 * sx * sx) - ((ys - iy) ** 2) / (2 * sy * sy))
            np.maximum(heat[b, cls], gauss, out=heat[b, cls])
            heat[b, cls, iy, ix] = 1.0
            region = gauss > 0.05
            share = gauss * region
            box_target[b][region] = box
            weight[b][region] = (share / share.sum() * math.log(max(areas[j], 2.0)))[region]
    return {
        "heat": torch.from_numpy(heat),
        "box": torch.from_numpy(box_target),
        "weight": torch.from_numpy(weight),
    }


def _giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - GIoU of xyxy boxes (..., 4), elementwise."""
    area_p = (pred[..., 2] - pred[..., 0]) * (pred[..., 3] - pred[..., 1])
    area_t = (target[..., 2] - target[..., 0]) * (target[..., 3] - target[..., 1])
    lt = torch.maximum(pred[..., :2], target[..., :2])
    rb = torch.minimum(pred[..., 2:], target[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = area_p + area_t - inter
    iou = inter / union.clamp(min=1e-6)
    hull = (
        torch.maximum(pred[..., 2:], target[..., 2:]) - torch.minimum(pred[..., :2], target[..., :2])
    ).prod(-1)
    return 1 - (iou - (hull - union) / hull.clamp(min=1e-6))


def detection_loss(
    maps: tuple[torch.Tensor, torch.Tensor], targets: dict[str, torch.Tensor], stride: int
) -> tuple[torch.Tensor, dict[str, float]]:
    """Penalty-reduced focal loss on the heatmap (CenterNet) plus weighted GIoU on boxes (TTFNet)."""
    heat_logits, distances = maps
    heat_target = targets["heat"]
    pred = torch.sigmoid(heat_logits).clamp(1e-4, 1 - 1e-4)
    positive = heat_target.eq(1).to(pred.dtype)
    pos_loss = torch.log(pred) * (1 - pred) ** 2 * positive
    neg_loss = torch.log(1 - pred) * pred**2 * (1 - heat_target) ** 4 * (1 - positive)
    count = positive.sum().clamp(min=1.0)
    heat_loss = -(pos_loss.sum() + neg_loss.sum()) / count

    weight = targets["weight"]
    _, _, h, w = distances.shape
    ys = torch.arange(h, dtype=distances.dtype).view(1, h, 1)
    xs = torch.arange(w, dtype=distances.dtype).view(1, 1, w)
    pred_boxes = _cell_boxes(distances.permute(0, 2, 3, 1), xs, ys, stride)
    mask = weight > 0
    if bool(mask.any()):
        giou = _giou_loss(pred_boxes[mask], targets["box"][mask])
        box_loss = (giou * weight[mask]).sum() / weight.sum().clamp(min=1e-6) * _BOX_LOSS_WEIGHT
    else:
        box_loss = distances.sum() * 0.0
    total = heat_loss + box_loss
    return total, {"heat_loss": float(heat_loss.detach()), "box_loss": float(box_loss.detach())}
