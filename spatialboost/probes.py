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

Data (`ProbeSplit`): `synthetic_split` (procedural rooms: exact depth, semantic masks from instance categories,
main-object category), `rgbd_folder_split` (a `color/` + `depth/` RGB-D folder: depth only) and `hub_split` (any
`datasets` dataset by column mapping, e.g. NYU Depth v2 or ADE20K parquet copies). `spatialboost/compare.py` runs
them for several encoders and writes the report.
"""

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import evaluate
import numpy as np
import torch
import torch.nn.functional as F
from datasets import load_dataset
from PIL import Image

from dataset_builders.scenes import CATEGORIES, generate_scene


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


@dataclass
class ProbeSplit:
    """Images with the references the probes score against, one entry per image.

    Args:
        images (`list[PIL.Image.Image]`): RGB images.
        depths (`list[np.ndarray]`): metric depth maps in metres (0 or non-finite = no reading).
        masks (`list[np.ndarray]`, *optional*): semantic class per pixel (255 = ignore); `None` when the source has
            no segmentation.
        labels (`list[int]`, *optional*): image-level category; `None` when the source has none.
        class_names (`list[str]`, *optional*): names of the segmentation classes (index = class id).
        label_names (`list[str]`, *optional*): names of the image-level categories (index = label).
    """

    images: list
    depths: list
    masks: list | None = None
    labels: list | None = None
    class_names: list | None = None
    label_names: list | None = None

    def __len__(self) -> int:
        return len(self.images)


def synthetic_split(scene_seeds, image_size: tuple[int, int] = (128, 96)) -> ProbeSplit:
    """View 0 of the procedural room of each seed (`dataset_builders.scenes`), with exact references.

    Segmentation classes are `room` (floor, walls, ceiling; class 0) and the scene categories in
    `dataset_builders.scenes.CATEGORIES` order (1..14), taken from each pixel's instance. The image-level label is
    the category of the object that covers the most pixels (a non-spatial "what is the main object" task). Use
    disjoint seed ranges for probe training, probe testing and anything trained on scenes.

    Args:
        scene_seeds (iterable of `int`): one scene per seed.
        image_size (`tuple[int, int]`): `(width, height)` of the renders.
    """
    categories = list(CATEGORIES)
    split = ProbeSplit([], [], [], [], ["room", *categories], categories)
    for seed in scene_seeds:
        scene = generate_scene(int(seed), image_size=image_size, num_views=1)
        view = scene.render(0)
        # instance id (0 = room, i = objects[i - 1]) -> semantic class (0 = room, 1 + category index)
        instance_to_class = np.array([0] + [1 + categories.index(o.category) for o in scene.objects])
        semantic = instance_to_class[view.instances].astype(np.int64)
        areas = np.bincount(semantic.ravel(), minlength=len(categories) + 1)[1:]
        split.images.append(Image.fromarray(view.image))
        split.depths.append(view.depth)
        split.masks.append(semantic)
        split.labels.append(int(areas.argmax()))
    return split


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def rgbd_folder_split(root: str | Path, depth_scale: float = 1000.0) -> ProbeSplit:
    """RGB-D frames from a folder laid out as `color/<name>.{jpg,png}` and `depth/<name>.png` (Redwood / Open3D,
    as in `../shared/data/rgbd/redwood`). Depth only: no masks or labels.

    Args:
        root (`str` or `Path`): the folder.
        depth_scale (`float`): raw depth units per metre (1000 for millimetre PNGs: Redwood, ScanNet; 5000 for TUM).
    """
    root = Path(root)
    colors = sorted(p for p in (root / "color").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not colors:
        raise ValueError(f"no colour images under {root / 'color'} (expected color/<name>.jpg and depth/<name>.png)")
    split = ProbeSplit([], [])
    for color in colors:
        image = Image.open(color).convert("RGB")
        depth = np.asarray(Image.open(root / "depth" / f"{color.stem}.png")).astype(np.float32) / depth_scale
        if depth.shape != (image.height, image.width):
            raise ValueError(f"{color.name}: depth {depth.shape} does not match the image {image.size[::-1]}")
        split.images.append(image)
        split.depths.append(depth)
    return split


def hub_split(
    dataset,
    image_column: str = "image",
    depth_column: str | None = None,
    depth_scale: float = 1.0,
    mask_column: str | None = None,
    mask_offset: int = 0,
    label_column: str | None = None,
    split: str = "train",
    revision: str | None = None,
    num_rows: int | None = None,
) -> ProbeSplit:
    """Probe references from a `datasets` dataset (a Hub id or an already loaded `Dataset`), by column mapping.

    Only the columns named are read; leave a column `None` when the dataset has no such reference. Examples (parquet
    copies on the Hub; check the column names on the dataset page and pin `revision`):

        # NYU Depth v2: RGB + metric depth in metres
        hub_split("sayakpaul/nyu_depth_v2", image_column="image", depth_column="depth_map", split="validation")
        # ADE20K (SceneParse150): 0 is "other" in the annotation, so shift by -1 and 0 becomes 255 (ignored)
        hub_split("scene_parse_150", image_column="image", mask_column="annotation", mask_offset=-1,
                  split="validation")

    Args:
        dataset (`str` or `datasets.Dataset`): Hub id / local folder, or a loaded dataset.
        image_column (`str`): RGB image column.
        depth_column (`str`, *optional*): depth column (image or array), divided by `depth_scale` to get metres.
        depth_scale (`float`): raw depth units per metre.
        mask_column (`str`, *optional*): semantic mask column (class ids).
        mask_offset (`int`): added to every mask value; values that fall outside 0..254 become 255 (ignored).
        label_column (`str`, *optional*): integer image-level label column.
        split, revision: of the Hub dataset, when `dataset` is an id.
        num_rows (`int`, *optional*): only the first rows.
    """
    if isinstance(dataset, str):
        dataset = load_dataset(dataset, split=split, revision=revision)
    if num_rows is not None:
        dataset = dataset.select(range(min(num_rows, len(dataset))))
    columns = [c for c in (image_column, depth_column, mask_column, label_column) if c is not None]
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise ValueError(f"columns {missing} not in the dataset (it has {dataset.column_names})")
    rows = dataset.select_columns(columns)
    result = ProbeSplit([], [], [] if mask_column else None, [] if label_column else None)
    for row in rows:
        image = row[image_column].convert("RGB")
        result.images.append(image)
        if depth_column:
            result.depths.append(np.asarray(row[depth_column], dtype=np.float32) / depth_scale)
        if mask_column:
            mask = np.asarray(row[mask_column], dtype=np.int64) + mask_offset
            result.masks.append(np.where((mask >= 0) & (mask < 255), mask, 255))
        if label_column:
            result.labels.append(int(row[label_column]))
    if not depth_column:
        result.depths = None
    return result
