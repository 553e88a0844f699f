"""Indexed sources of `Frame`s: synthetic scenes, RGB-D frames, image folders and Hub datasets.

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057). Every source has `len()` and `load(index)`, so a
build can be split into chunks by index across processes and machines; `load` raises `SkipSample` for bad input.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Dataset
from datasets import Image as ImageFeature
from PIL import Image

from .frames import Frame, Instance, SkipReason, SkipSample, clean_depth, decode_image
from .geometry import Intrinsics
from .scenes import Scene, generate_scene
from .spatial import Thresholds


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".webp", ".tif", ".tiff")


class SyntheticSource:
    """Procedural scenes (`dataset_builders.scenes`), one per index, rendered from view `view`.

    Args:
        seed (`int`): Build seed; scene `i` is generated from `(seed, i)`.
        num_samples (`int`): Number of scenes.
        image_size (`tuple[int, int]`): `(width, height)`.
        num_objects (`tuple[int, int]`): Inclusive range of objects per scene.
        view (`int`): Which view of each scene to render.
    """

    name = "synthetic"

    def __init__(
        self,
        seed: int,
        num_samples: int,
        image_size: tuple[int, int] = (640, 480),
        num_objects: tuple[int, int] = (8, 12),
        view: int = 0,
    ):
        self.seed, self.num_samples, self.image_size, self.num_objects, self.view = (
            seed,
            num_samples,
            image_size,
            num_objects,
            view,
        )

    def __len__(self) -> int:
        return self.num_samples

    def scene(self, index: int) -> Scene:
        scene_seed = int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0])
        return generate_scene(scene_seed, self.num_objects, self.image_size, num_views=self.view + 1)

    def load(self, index: int) -> Frame:
        scene = self.scene(index)
        rendering = scene.render(self.view)
        categories = {obj.instance_id: obj.category for obj in scene.objects}
        instances = [
            Instance(rendering.instances == instance_id, categories[instance_id])
            for instance_id in np.unique(rendering.instances)
            if instance_id != 0
        ]
        return Frame(
            sample_id=f"scene-{scene.seed}-view-{self.view}",
            source=self.name,
            image=Image.fromarray(rendering.image),
            depth=rendering.depth,
            intrinsics=rendering.intrinsics,
            instances=instances,
            depth_origin="synthetic",
            intrinsics_origin="synthetic",
        )


def decode_depth_millimetres(raw: np.ndarray) -> np.ndarray:
    """uint16 millimetres (Redwood, most PrimeSense/Kinect v2 exports); 0 is no reading."""
    return raw.astype(np.float32) / 1000.0


def decode_depth_tum(raw: np.ndarray) -> np.ndarray:
    """TUM RGB-D: uint16 with 5000 units per metre."""
    return raw.astype(np.float32) / 5000.0


def decode_depth_sun(raw: np.ndarray) -> np.ndarray:
    """SUN RGB-D: uint16 millimetres rotated right by 3 bits."""
    value = raw.astype(np.uint32)
    return (((value >> 3) | (value << 13)) & 0xFFFF).astype(np.float32) / 1000.0


def decode_depth_nyu(raw: np.ndarray) -> np.ndarray:
    """NYU Depth v2 raw Kinect disparity: byte-swapped 16-bit, 2047 invalid, metres = 351.3 / (1092.5 - d)."""
    value = raw.astype(np.uint32)
    disparity = ((value >> 8) | (value << 8)) & 0xFFFF
    with np.errstate(divide="ignore"):
        depth = 351.3 / (1092.5 - disparity.astype(np.float64))
    return np.where((disparity < 2047) & (depth > 0), depth, 0.0).astype(np.float32)


@dataclass(frozen=True)
class RGBDFrameFiles:
    """Files and decoding of one RGB-D frame.

    Args:
        color (`Path`): Colour image.
        depth (`Path`): Depth image (16-bit PNG or PGM).
        decode (`Callable[[np.ndarray], np.ndarray]`): Raw depth values to metres (0 or non-finite: no reading).
        intrinsics (`Intrinsics`): Intrinsics of the colour image, registered to the depth image.
    """

    color: Path
    depth: Path
    decode: Callable[[np.ndarray], np.ndarray]
    intrinsics: Intrinsics


# Published intrinsics of the single frames in the formats of `../shared/data/rgbd/` (approximate, per dataset).
SINGLE_FRAME_FORMATS = {
    "TUM": (decode_depth_tum, Intrinsics(517.3, 516.5, 318.6, 255.3)),
    "SUN": (decode_depth_sun, Intrinsics(570.3, 570.3, 320.0, 240.0)),
    "NYU": (decode_depth_nyu, Intrinsics(518.9, 519.5, 325.6, 253.7)),
}


class RGBDSource:
    """RGB-D frames with sensor depth and intrinsics.

    Args:
        frames (`list[RGBDFrameFiles]`): The frames.
        thresholds (`Thresholds`): Input limits (image size, valid depth share).
    """

    name = "rgbd"

    def __init__(self, frames: list[RGBDFrameFiles], thresholds: Thresholds):
        self.frames, self.thresholds = frames, thresholds

    @classmethod
    def from_redwood(cls, root: str | Path, thresholds: Thresholds) -> RGBDSource:
        """A Redwood / Open3D sequence: `color/*.jpg`, `depth/*.png` (mm), `camera_primesense.json`."""
        root = Path(root)
        camera = json.loads((root / "camera_primesense.json").read_text())
        # Open3D writes the 3x3 matrix column-major: fx, 0, 0, 0, fy, 0, cx, cy, 1.
        matrix = np.array(camera["intrinsic_matrix"], dtype=np.float64).reshape(3, 3).T
        intrinsics = Intrinsics(matrix[0, 0], matrix[1, 1], matrix[0, 2], matrix[1, 2])
        colors = sorted(p for p in (root / "color").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        frames = [
            RGBDFrameFiles(c, root / "depth" / f"{c.stem}.png", decode_depth_millimetres, intrinsics) for c in colors
        ]
        return cls(frames, thresholds)

    @classmethod
    def from_single_frames(cls, root: str | Path, thresholds: Thresholds) -> RGBDSource:
        """Files `{TUM,SUN,NYU}_color.*` and `{TUM,SUN,NYU}_depth.*`, decoded per dataset."""
        root = Path(root)
        frames = []
        for prefix, (decode, intrinsics) in SINGLE_FRAME_FORMATS.items():
            colors, depths = sorted(root.glob(f"{prefix}_color.*")), sorted(root.glob(f"{prefix}_depth.*"))
            if colors and depths:
                frames.append(RGBDFrameFiles(colors[0], depths[0], decode, intrinsics))
        return cls(frames, thresholds)

    def __len__(self) -> int:
        return len(self.frames)

    def load(self, index: int) -> Frame:
        files = self.frames[index]
        image, _ = decode_image(
            files.color.read_bytes(), self.thresholds.min_image_side, self.thresholds.max_image_pixels
        )
        try:
            raw = np.asarray(Image.open(files.depth))
        except (OSError, SyntaxError, ValueError) as error:
            raise SkipSample(SkipReason.CORRUPT_DEPTH, str(error)) from error
        depth = clean_depth(files.decode(raw), image.size, self.thresholds.min_valid_depth_fraction)
        return Frame(
            sample_id=files.color.name,
            source=self.name,
            image=image,
            depth=depth,
            intrinsics=files.intrinsics,
            depth_origin="sensor",
            intrinsics_origin="sensor",
        )


class ImageFolderSource:
    """Every image file under a folder (recursively, sorted); perception supplies depth, masks and captions.

    Args:
        root (`str` or `Path`): Folder.
        thresholds (`Thresholds`): Input limits.
    """

    name = "image_folder"

    def __init__(self, root: str | Path, thresholds: Thresholds):
        self.root = Path(root)
        self.files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        self.thresholds = thresholds

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> Frame:
        path = self.files[index]
        image, focal = decode_image(
            path.read_bytes(), self.thresholds.min_image_side, self.thresholds.max_image_pixels
        )
        return Frame(str(path.relative_to(self.root)), self.name, image, exif_focal_px=focal)


class HubImageSource:
    """Rows of a `datasets.Dataset` with an image column; perception supplies depth, masks and captions.

    The column is read undecoded, so corrupt bytes become a counted skip instead of an exception inside `datasets`.

    Args:
        dataset (`Dataset`): E.g. `load_dataset(repo, split="train", revision=...)`.
        image_column (`str`): Name of the image column.
        thresholds (`Thresholds`): Input limits.
        name (`str`): Recorded as the source in provenance (e.g. the repository id).
    """

    def __init__(self, dataset: Dataset, image_column: str, thresholds: Thresholds, name: str = "hub"):
        self.dataset = dataset.cast_column(image_column, ImageFeature(decode=False))
        self.image_column, self.thresholds, self.name = image_column, thresholds, name

    def __len__(self) -> int:
        return len(self.dataset)

    def load(self, index: int) -> Frame:
        cell = self.dataset[index][self.image_column]
        data = cell["bytes"] if cell["bytes"] is not None else Path(cell["path"]).read_bytes()
        image, focal = decode_image(data, self.thresholds.min_image_side, self.thresholds.max_image_pixels)
        return Frame(f"{self.name}:{index}", self.name, image, exif_focal_px=focal)
