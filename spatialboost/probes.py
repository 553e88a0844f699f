"""Frozen-encoder probes: how much depth, segmentation and category an encoder's features hold linearly.

SpatialBoost (https://arxiv.org/abs/2603.22057) claims lower depth error and higher segmentation mIoU for a boosted
encoder, with its general ability kept. These probes measure that on frozen features, the same way for every encoder
compared:

- depth: a linear map from each patch feature to the log-depth of that patch, upsampled bilinearly to the reference
  resolution (RMSE, AbsRel, δ1–δ3 over valid pixels);
- semantic segmentation: a linear map from each patch feature to class scores, upsampled bilinearly, argmax (mIoU);
- classification: kNN (cosine, temperature-weighted votes) and a linear classifier on the pooled output (top-1).

Every linear map is a ridge regression solved in closed form (float64), so a probe has no learning-rate or epoch
knob and the same features always give the same numbers. Metrics are the `evaluate` modules shipped under
`spatialboost/metrics/`.
"""

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import evaluate
import numpy as np
import torch
import torch.nn.functional as F


METRICS_DIR = Path(__file__).parent / "metrics"


@cache
def load_metric(name: str) -> evaluate.EvaluationModule:
    """One of the metric modules shipped with the package: depth_estimation, mean_iou, top1_accuracy."""
    return evaluate.load(str(METRICS_DIR / name))


@dataclass
class EncodedImages:
    """Frozen features of a set of images.

    Args:
        patches (`torch.Tensor`): (images, grid_height, grid_width, hidden) patch features, CLS/registers removed.
        pooled (`torch.Tensor`): (images, hidden) pooled output of the encoder.
    """

    patches: torch.Tensor
    pooled: torch.Tensor


@torch.no_grad()
def encode_images(model, images, batch_size: int = 16) -> EncodedImages:
    """Runs a frozen encoder (any SpatialBoost or upstream DINOv3 / SigLIP FixRes vision model) over PIL images.

    Uses `model.image_processor` when present (SpatialBoost models carry one), so every encoder sees its own
    preprocessing. Patch tokens are the last `grid_height × grid_width` tokens of `last_hidden_state`.
    """
    model.eval()
    patches, pooled = [], []
    for start in range(0, len(images), batch_size):
        inputs = model.image_processor(images=images[start : start + batch_size], return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(model.device, model.dtype)
        output = model(pixel_values=pixel_values)
        grid_h, grid_w = (size // model.config.patch_size for size in pixel_values.shape[-2:])
        tokens = output.last_hidden_state[:, -grid_h * grid_w :]
        # (batch, tokens, hidden) -> (batch, grid_h, grid_w, hidden)
        patches.append(tokens.reshape(len(tokens), grid_h, grid_w, -1).float().cpu())
        pooled.append(output.pooler_output.float().cpu())
    return EncodedImages(patches=torch.cat(patches), pooled=torch.cat(pooled))


def fit_ridge(features: torch.Tensor, targets: torch.Tensor, l2: float = 1e-3) -> torch.Tensor:
    """Closed-form ridge regression with a bias, in float64.

    Args:
        features (`torch.Tensor`): (samples, dims).
        targets (`torch.Tensor`): (samples, outputs).
        l2 (`float`): penalty relative to the mean feature energy, so one value suits encoders of any scale.

    Returns:
        `torch.Tensor`: (dims + 1, outputs) weights, the last row being the bias.
    """
    x = torch.cat([features.double(), torch.ones(len(features), 1, dtype=torch.float64)], dim=1)
    gram = x.T @ x
    penalty = l2 * gram.diagonal()[:-1].mean()
    gram[:-1, :-1] += penalty * torch.eye(x.shape[1] - 1, dtype=torch.float64)
    return torch.linalg.solve(gram, x.T @ targets.double())


def apply_ridge(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return features.double() @ weights[:-1] + weights[-1]


def _pool_to_grid(maps: list[np.ndarray], grid: tuple[int, int], reduce: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-patch targets from full-resolution maps: mean log-depth ('log_mean') or majority class ('mode').

    Returns (images, grid_h, grid_w) targets and a mask of patches that have any valid pixel.
    """
    targets, masks = [], []
    for value in maps:
        h, w = value.shape
        # Pixel -> patch index on the grid the encoder saw (the processor resized the whole image to it).
        rows = np.minimum(np.arange(h) * grid[0] // h, grid[0] - 1)
        cols = np.minimum(np.arange(w) * grid[1] // w, grid[1] - 1)
        cell = (rows[:, None] * grid[1] + cols[None, :]).ravel()
        flat = value.ravel()
        if reduce == "log_mean":
            valid = np.isfinite(flat) & (flat > 0)
            sums = np.bincount(cell[valid], np.log(flat[valid]), minlength=grid[0] * grid[1])
        else:
            valid = flat != 255
            num_classes = int(flat[valid].max()) + 1 if valid.any() else 1
            votes = np.zeros((grid[0] * grid[1], num_classes))
            np.add.at(votes, (cell[valid], flat[valid]), 1)
            sums = votes.argmax(1).astype(np.float64)
        counts = np.bincount(cell[valid], minlength=grid[0] * grid[1])
        target = sums / np.maximum(counts, 1) if reduce == "log_mean" else sums
        targets.append(torch.from_numpy(target.reshape(grid)))
        masks.append(torch.from_numpy((counts > 0).reshape(grid)))
    return torch.stack(targets), torch.stack(masks)


def _upsample(grid_values: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    # (grid_h, grid_w, channels) -> (channels, height, width), bilinear as in the DINO linear probes
    return F.interpolate(grid_values.permute(2, 0, 1)[None], size=size, mode="bilinear", align_corners=False)[0]


def depth_probe(train: EncodedImages, train_depths, test: EncodedImages, test_depths, l2: float = 1e-3) -> dict:
    """Fits the linear depth probe on `train` and scores it on `test` at the references' full resolution.

    Args:
        train, test (`EncodedImages`): frozen features.
        train_depths, test_depths (`list[np.ndarray]`): metric depth maps (metres; 0, NaN or inf = no depth).

    Returns:
        `dict`: the depth_estimation metrics (rmse, abs_rel, delta1..3) and `predictions` (list of maps).
    """
    grid = tuple(train.patches.shape[1:3])
    log_depth, valid = _pool_to_grid(train_depths, grid, "log_mean")
    weights = fit_ridge(train.patches[valid], log_depth[valid][:, None], l2)
    predictions = []
    for features, reference in zip(test.patches, test_depths, strict=True):
        grid_prediction = apply_ridge(features, weights)  # (grid_h, grid_w, 1) log-depth
        predictions.append(_upsample(grid_prediction, reference.shape)[0].exp().numpy())
    scores = load_metric("depth_estimation").compute(
        predictions=[p.ravel() for p in predictions],
        references=[np.nan_to_num(r, nan=0.0, posinf=0.0).ravel() for r in test_depths],
    )
    return {**scores, "predictions": predictions}


def segmentation_probe(
    train: EncodedImages, train_masks, test: EncodedImages, test_masks, num_labels: int, l2: float = 1e-3
) -> dict:
    """Fits the linear segmentation probe (ridge onto one-hot patch labels) and scores mIoU at full resolution.

    Args:
        train_masks, test_masks (`list[np.ndarray]`): class index per pixel, 255 = ignore.
        num_labels (`int`): number of classes.
    """
    grid = tuple(train.patches.shape[1:3])
    labels, valid = _pool_to_grid(train_masks, grid, "mode")
    one_hot = F.one_hot(labels[valid].long(), num_labels).double()
    weights = fit_ridge(train.patches[valid], one_hot, l2)
    predictions = [
        _upsample(apply_ridge(features, weights), reference.shape).argmax(0).numpy()
        for features, reference in zip(test.patches, test_masks, strict=True)
    ]
    scores = load_metric("mean_iou").compute(
        predictions=[p.ravel() for p in predictions], references=[m.ravel() for m in test_masks], num_labels=num_labels
    )
    return {**scores, "predictions": predictions}


def classification_probes(
    train: EncodedImages, train_labels, test: EncodedImages, test_labels, k: int = 20, temperature: float = 0.07
) -> dict:
    """kNN (cosine similarity, votes weighted by exp(similarity / temperature), as in DINO) and linear (ridge onto
    one-hot) top-1 accuracy on the pooled output."""
    train_labels, test_labels = torch.as_tensor(train_labels), torch.as_tensor(test_labels)
    num_labels = int(max(train_labels.max(), test_labels.max())) + 1
    similarity = F.normalize(test.pooled, dim=1) @ F.normalize(train.pooled, dim=1).T
    top, index = similarity.topk(min(k, len(train_labels)), dim=1)
    votes = torch.zeros(len(test_labels), num_labels).scatter_add_(1, train_labels[index], (top / temperature).exp())
    weights = fit_ridge(train.pooled, F.one_hot(train_labels, num_labels).double())
    linear = apply_ridge(test.pooled, weights).argmax(1)
    accuracy = load_metric("top1_accuracy")
    return {
        "knn_accuracy": accuracy.compute(predictions=votes.argmax(1), references=test_labels)["accuracy"],
        "linear_accuracy": accuracy.compute(predictions=linear, references=test_labels)["accuracy"],
    }
