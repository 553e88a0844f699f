"""Probe metrics against hand-computed cases, and probes against features with known content."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import DINOv3ViTConfig, DINOv3ViTModel

from modeling_spatialboost import SpatialBoostDinov3ViTModel
from spatialboost.probes import (
    EncodedImages,
    classification_probes,
    depth_probe,
    encode_images,
    load_metric,
    segmentation_probe,
)


def test_depth_metrics_by_hand():
    scores = load_metric("depth_estimation").compute(
        predictions=[[1.0, 2.0, 3.9, 5.0]],
        references=[[1.0, 4.0, 3.0, 0.0]],  # the last pixel has no depth
    )
    assert scores["num_pixels"] == 3
    assert scores["rmse"] == pytest.approx(math.sqrt((0 + 4 + 0.81) / 3))
    assert scores["abs_rel"] == pytest.approx((0 + 0.5 + 0.3) / 3)
    # ratios 1, 2, 1.3 against thresholds 1.25, 1.5625, 1.953
    assert (scores["delta1"], scores["delta2"], scores["delta3"]) == pytest.approx((1 / 3, 2 / 3, 2 / 3))


def test_mean_iou_by_hand():
    scores = load_metric("mean_iou").compute(predictions=[[0, 1, 1, 2]], references=[[0, 1, 0, 255]], num_labels=3)
    # class 0: 1 / 2, class 1: 1 / 2, class 2: absent from both after ignoring the last pixel
    assert scores["mean_iou"] == pytest.approx(0.5)
    assert scores["per_class_iou"][:2] == pytest.approx([0.5, 0.5]) and math.isnan(scores["per_class_iou"][2])
    assert scores["pixel_accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="labels must lie in"):
        load_metric("mean_iou").compute(predictions=[[3]], references=[[0]], num_labels=3)


GRID, PIXELS = (4, 4), (32, 32)


def smooth_depths(num: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : PIXELS[0], 0 : PIXELS[1]] / PIXELS[0]
    return [np.exp(0.3 + rng.uniform(-0.5, 0.5) * xx + rng.uniform(0, 1) * yy).astype(np.float32) for _ in range(num)]


def features_holding(grid_values: torch.Tensor, noise: float, seed: int) -> EncodedImages:
    """Patch features whose first channel is `grid_values` and whose other 15 channels are noise."""
    generator = torch.Generator().manual_seed(seed)
    patches = noise * torch.randn(*grid_values.shape[:3], 16, generator=generator)
    patches[..., 0] += grid_values
    return EncodedImages(patches=patches, pooled=patches.mean((1, 2)))


def patch_log_depth(depths):
    # mean log-depth of each 8 × 8 pixel patch
    logs = torch.from_numpy(np.log(np.stack(depths)))
    return logs.reshape(len(depths), GRID[0], 8, GRID[1], 8).mean((2, 4))


def test_depth_probe_reads_depth_that_features_hold_linearly():
    train, test = smooth_depths(12, 0), smooth_depths(4, 1)
    holding = depth_probe(
        features_holding(patch_log_depth(train), 0.01, 0),
        train,
        features_holding(patch_log_depth(test), 0.01, 1),
        test,
    )
    blind = depth_probe(
        features_holding(torch.zeros(12, *GRID), 1.0, 0), train, features_holding(torch.zeros(4, *GRID), 1.0, 1), test
    )
    assert holding["abs_rel"] < 0.03 and holding["delta1"] > 0.99
    assert blind["abs_rel"] > 3 * holding["abs_rel"]
    assert holding["predictions"][0].shape == PIXELS


def test_segmentation_probe_reads_classes_that_features_hold():
    rng = np.random.default_rng(0)
    grids = [rng.integers(0, 3, GRID) for _ in range(16)]
    masks = [np.kron(grid, np.ones((8, 8), dtype=np.int64)) for grid in grids]
    masks[0][:2] = 255  # ignored pixels
    one_hot = torch.stack([torch.from_numpy(grid) for grid in grids]).double()
    encoded = features_holding(one_hot, 0.05, 0)
    encoded.patches[..., 1:4] += torch.nn.functional.one_hot(torch.from_numpy(np.stack(grids)), 3)
    train, test = (
        EncodedImages(encoded.patches[:12], encoded.pooled[:12]),
        EncodedImages(encoded.patches[12:], encoded.pooled[12:]),
    )
    scores = segmentation_probe(train, masks[:12], test, masks[12:], num_labels=3)
    # bilinear upsampling blurs patch borders, so a little below 1
    assert scores["mean_iou"] > 0.8
    blind = segmentation_probe(
        features_holding(torch.zeros(12, *GRID), 1.0, 0),
        masks[:12],
        features_holding(torch.zeros(4, *GRID), 1.0, 1),
        masks[12:],
        3,
    )
    assert blind["mean_iou"] < scores["mean_iou"] - 0.3


def test_classification_probes_on_separable_and_on_random_features():
    labels = torch.arange(40) % 4
    centres = 3 * torch.randn(4, 16, generator=torch.Generator().manual_seed(0))
    pooled = centres[labels] + 0.1 * torch.randn(40, 16, generator=torch.Generator().manual_seed(1))

    def split(x):
        return (
            EncodedImages(patches=torch.zeros(1), pooled=x[:30]),
            EncodedImages(patches=torch.zeros(1), pooled=x[30:]),
        )

    train, test = split(pooled)
    scores = classification_probes(train, labels[:30], test, labels[30:], k=5)
    assert scores == {"knn_accuracy": 1.0, "linear_accuracy": 1.0}
    train, test = split(torch.randn(40, 16, generator=torch.Generator().manual_seed(2)))
    assert classification_probes(train, labels[:30], test, labels[30:], k=5)["knn_accuracy"] < 0.7


def test_encode_images_strips_prefix_tokens_and_keeps_the_grid():
    torch.manual_seed(0)
    config = DINOv3ViTConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        patch_size=8,
        image_size=32,
        num_register_tokens=2,
    )
    model = SpatialBoostDinov3ViTModel.from_base(DINOv3ViTModel(config))
    images = [Image.fromarray(np.full((20, 30, 3), value, dtype=np.uint8)) for value in (0, 128, 255)]
    encoded = encode_images(model, images, batch_size=2)
    assert encoded.patches.shape == (3, 4, 4, 32) and encoded.pooled.shape == (3, 32)
    with torch.no_grad():
        pixel_values = model.image_processor(images=images, return_tensors="pt")["pixel_values"]
        tokens = model(pixel_values=pixel_values).last_hidden_state
    torch.testing.assert_close(encoded.patches.reshape(3, 16, 32), tokens[:, 3:])  # CLS + 2 registers stripped
