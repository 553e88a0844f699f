"""Indexed sources of `Frame`s: synthetic scenes, RGB-D frames, image folders and Hub datasets.

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057). Every source has `len()` and `load(index)`, so a
build can be split into chunks by index across processes and machines; `load` raises `SkipSample` for bad input.

RGB-D layouts (`--source rgbd --rgbd-layout ...`):

| layout | frames | intrinsics | masks and names | up vector |
|---|---|---|---|---|
| `redwood` | `color/`, `depth/` (mm) | `camera_primesense.json` | segmenter | estimated |
| `single_frames` | `{TUM,SUN,NYU}_{color,depth}.*` | published per dataset | segmenter | estimated |
| `annotated` | one folder per frame (recursive): `color.jpg`, `depth.png` | `camera.json` | `instances.png`, `objects.json` | `camera.json` `up_camera` |
| `sunrgbd` | SUN RGB-D release folders (recursive): `image/`, `depth/` or `depth_bfx/` | `intrinsics.txt` | `annotation2Dfinal/index.json` | `extrinsics/` (Rtilt) |
| `scannet` | a ScanNet export: `color/` (full resolution), `depth/`, `pose/` | `intrinsic/intrinsic_color.txt`, `intrinsic_depth.txt` | `instance-filt/`, `label-filt/`, label map | axis alignment of `<scene>.txt` |

Layouts with masks of their own never run a segmenter.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from .frames import Frame, Instance, SkipReason, SkipSample, clean_depth, decode_image
from .geometry import Intrinsics, register_depth
from .scenes import Scene, generate_scene
from .spatial import Thresholds


if TYPE_CHECKING:
    from datasets import Dataset


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
            # World up written in camera coordinates: the renderer knows gravity exactly.
            up_camera=rendering.camera_to_world[:3, :3].T @ np.array([0.0, 0.0, 1.0]),
            up_origin="synthetic:pose",
            instances_origin="synthetic",
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
        colors = sorted(
            p for p in (root / "color").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )  # is_file: no folders named like images, no broken links
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
            _read_bytes(files.color), self.thresholds.min_image_side, self.thresholds.max_image_pixels
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


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as error:
        raise SkipSample(SkipReason.MISSING_FILE, str(path)) from error
    except OSError as error:  # a directory with an image's name, permissions, I/O errors
        raise SkipSample(SkipReason.MISSING_FILE, f"{path}: {error}") from error


def _read_raster(path: Path, reason: SkipReason) -> np.ndarray:
    """A single-channel PNG (depth, instance or label image) as an array; `reason` when it cannot be decoded."""
    data = _read_bytes(path)
    try:
        with Image.open(io.BytesIO(data)) as image:
            array = np.asarray(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise SkipSample(reason, f"{path}: {error}") from error
    if array.ndim != 2:
        raise SkipSample(reason, f"{path}: {array.ndim}-D, expected one channel")
    return array


def _read_text(path: Path, reason: SkipReason) -> str:
    data = _read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SkipSample(reason, f"{path}: {error}") from error


def _read_json(path: Path, reason: SkipReason):
    try:
        return json.loads(_read_text(path, reason))
    except json.JSONDecodeError as error:
        raise SkipSample(reason, f"{path}: {error}") from error


def _read_matrix(path: Path, shape: tuple[int, int], reason: SkipReason) -> np.ndarray:
    """The top-left `shape` block of the matrix in a whitespace-separated text file: the file holds exactly that
    matrix, or rows of 4 numbers (a 3x4 `[R | t]` or 4x4 transform, whose rotation is the 3x3 block)."""
    try:
        values = np.array(_read_text(path, reason).split(), dtype=np.float64)
    except ValueError as error:
        raise SkipSample(reason, f"{path}: {error}") from error
    rows, columns = shape
    if len(values) == rows * columns:
        return values.reshape(rows, columns)
    if columns <= 4 and len(values) % 4 == 0 and len(values) // 4 >= rows:
        return values.reshape(-1, 4)[:rows, :columns]
    raise SkipSample(reason, f"{path}: {len(values)} numbers, expected a {rows}x{columns} matrix")


def _unit_up(vector, path: Path) -> np.ndarray:
    up = np.asarray(vector, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(up)) if up.shape == (3,) and np.isfinite(up).all() else 0.0
    if norm < 1e-6:
        raise SkipSample(SkipReason.CORRUPT_CAMERA, f"{path}: up vector {vector!r} is not a finite 3-vector")
    return up / norm


def _check_intrinsics(k: Intrinsics, size: tuple[int, int], path: Path) -> Intrinsics:
    values = np.array([k.fx, k.fy, k.cx, k.cy])
    if not np.isfinite(values).all() or k.fx <= 0 or k.fy <= 0:
        raise SkipSample(SkipReason.CORRUPT_CAMERA, f"{path}: intrinsics {k}")
    # A principal point far outside the image means intrinsics of another resolution.
    if not (-0.25 * size[0] <= k.cx <= 1.25 * size[0] and -0.25 * size[1] <= k.cy <= 1.25 * size[1]):
        raise SkipSample(SkipReason.CORRUPT_CAMERA, f"{path}: principal point ({k.cx}, {k.cy}) for image {size}")
    return k


def category_text(name: str) -> str:
    """A dataset's class name as it reads in a sentence: `night_stand` -> `night stand`."""
    return " ".join(name.replace("_", " ").split()).lower()


class AnnotatedRGBDSource:
    """Real RGB-D frames with their own annotations, in the layout of `../shared/data/annotated/` (its README):
    one folder per frame, found recursively, holding `color.jpg`, `depth.png` (uint16 mm, 0 = none, on the colour
    grid), `camera.json` (`fx, fy, cx, cy`, 0-based pixel centres, and `up_camera`, the unit vector against gravity
    in the OpenCV camera frame), `instances.png` (uint16 object ids, 0 = none) and `objects.json` (`id`, `category`;
    3D boxes, when present, are for benchmarks and never read here).

    Args:
        root (`str` or `Path`): Folder searched recursively for frame folders (those with a `camera.json`).
        thresholds (`Thresholds`): Input limits.
        use_up_vector (`bool`): Use `up_camera` (default); `False` estimates gravity instead (robustness checks).
    """

    name = "rgbd"
    files = ("color.jpg", "depth.png", "camera.json", "instances.png", "objects.json")

    def __init__(self, root: str | Path, thresholds: Thresholds, use_up_vector: bool = True):
        self.root = Path(root)
        self.thresholds, self.use_up_vector = thresholds, use_up_vector
        self.folders = sorted({p.parent for name in ("camera.json", "color.jpg") for p in self.root.rglob(name)})

    def __len__(self) -> int:
        return len(self.folders)

    def load(self, index: int) -> Frame:
        folder = self.folders[index]
        image, _ = decode_image(
            _read_bytes(folder / "color.jpg"), self.thresholds.min_image_side, self.thresholds.max_image_pixels
        )
        camera = _read_json(folder / "camera.json", SkipReason.CORRUPT_CAMERA)
        try:
            k = Intrinsics(*(float(camera[key]) for key in ("fx", "fy", "cx", "cy")))
            up = _unit_up(camera["up_camera"], folder / "camera.json") if self.use_up_vector else None
            size = (int(camera.get("width", image.width)), int(camera.get("height", image.height)))
        except (KeyError, TypeError, ValueError) as error:
            raise SkipSample(SkipReason.CORRUPT_CAMERA, f"{folder / 'camera.json'}: {error!r}") from error
        if size != image.size:
            raise SkipSample(SkipReason.CORRUPT_CAMERA, f"{folder}: camera.json is for {size}, image is {image.size}")
        k = _check_intrinsics(k, image.size, folder / "camera.json")
        raw = _read_raster(folder / "depth.png", SkipReason.CORRUPT_DEPTH)
        depth = clean_depth(decode_depth_millimetres(raw), image.size, self.thresholds.min_valid_depth_fraction)
        ids = _read_raster(folder / "instances.png", SkipReason.CORRUPT_ANNOTATION)
        if ids.shape != depth.shape:
            raise SkipSample(SkipReason.MASK_SHAPE_MISMATCH, f"{folder}: instances {ids.shape}, image {image.size}")
        objects = _read_json(folder / "objects.json", SkipReason.CORRUPT_ANNOTATION)
        try:
            categories = {int(o["id"]): category_text(str(o["category"])) for o in objects}
        except (KeyError, TypeError, ValueError) as error:
            raise SkipSample(SkipReason.CORRUPT_ANNOTATION, f"{folder / 'objects.json'}: {error!r}") from error
        # Ids without a category cannot be named; they are left out (their pixels still occlude the others).
        instances = [
            Instance(ids == value, categories[value], instance_id=value)
            for value in np.unique(ids)
            if value != 0 and int(value) in categories
        ]
        origin = str(camera.get("depth_origin", "sensor"))
        return Frame(
            sample_id=str(folder.relative_to(self.root)) if folder != self.root else folder.name,
            source=self.name,
            image=image,
            depth=depth,
            intrinsics=k,
            instances=instances,
            depth_origin=origin,
            intrinsics_origin="annotated",
            up_camera=up,
            up_origin="annotated:up_camera" if up is not None else "",
            instances_origin="given",
        )


def sun_up_camera(extrinsics: np.ndarray) -> np.ndarray:
    """Up direction in the OpenCV camera frame from a SUN RGB-D `extrinsics/*.txt` rotation `E` (its first 3x3).

    The toolbox (`readframeSUNRGBD.m`) builds `Rtilt = P E P^T` with `P: (x, y, z) -> (x, z, -y)`, and `Rtilt` maps
    SUN camera coordinates (x right, y forward, z up) to the upright frame. So `E` maps OpenCV camera coordinates
    to an upright frame whose y axis points down, and up in the camera frame is `E^T (0, -1, 0) = -E[1]`.
    """
    return -extrinsics[1] / np.linalg.norm(extrinsics[1])


# Structure the SUN RGB-D toolbox leaves out of the objects (`readframeSUNRGBD.m`): they are the room, not in it.
SUN_STRUCTURE = {"wall", "floor", "ceiling"}


def rasterise_polygons(polygons: list[tuple[int, list[float], list[float]]], size: tuple[int, int]) -> np.ndarray:
    """`(H, W)` int32 map of `(label, xs, ys)` polygons in pixel coordinates; later polygons are drawn on top."""
    canvas = Image.new("I", size, 0)
    draw = ImageDraw.Draw(canvas)
    for label, xs, ys in polygons:
        if len(xs) >= 3:
            draw.polygon(list(zip(xs, ys, strict=True)), fill=int(label))
    return np.asarray(canvas, dtype=np.int32)


class SunRGBDSource:
    """Frames of the official SUN RGB-D release (`SUNRGBD/<sensor>/<collection>/<frame>/`), found recursively.

    Per frame: `image/*.jpg`; `depth/*.png` (raw) or `depth_bfx/*.png` (the toolbox's filled depth), 16-bit
    millimetres rotated by 3 bits; `intrinsics.txt` (3x3 K, row-major, for MATLAB's 1-based pixel grid, so
    `cx = K[0, 2] - 1`); `extrinsics/*.txt` (the last file, as the toolbox reads it: the rotation that levels the
    camera, see `sun_up_camera`); `annotation2Dfinal/index.json` (polygons: `frames[0].polygon[i]` with `x`, `y`
    and `object`, an index into `objects[j].name`). Polygon coordinates are taken as 0-based pixel positions;
    wall, floor and ceiling are not objects.

    Args:
        root (`str` or `Path`): Folder searched recursively for frame folders (those with an `intrinsics.txt`).
        thresholds (`Thresholds`): Input limits.
        depth_folder (`str`): `depth` (default: raw sensor readings, so every pixel answer is a reading) or
            `depth_bfx` (hole-filled by the toolbox; its filled pixels are interpolations).
        use_up_vector (`bool`): Use the extrinsics' up vector (default) or estimate gravity.
    """

    name = "rgbd"

    def __init__(
        self, root: str | Path, thresholds: Thresholds, depth_folder: str = "depth", use_up_vector: bool = True
    ):
        if depth_folder not in ("depth", "depth_bfx"):
            raise ValueError(f"depth_folder must be 'depth' or 'depth_bfx', got {depth_folder!r}")
        self.root = Path(root)
        self.thresholds, self.depth_folder, self.use_up_vector = thresholds, depth_folder, use_up_vector
        self.folders = sorted(p.parent for p in self.root.rglob("intrinsics.txt") if (p.parent / "image").is_dir())

    def __len__(self) -> int:
        return len(self.folders)

    @staticmethod
    def _files(folder: Path, suffix: str) -> list[Path]:
        found = sorted(p for p in folder.glob(f"*{suffix}") if p.is_file()) if folder.is_dir() else []
        if not found:
            raise SkipSample(SkipReason.MISSING_FILE, f"no *{suffix} in {folder}")
        return found

    def load(self, index: int) -> Frame:
        folder = self.folders[index]
        image, _ = decode_image(
            _read_bytes(self._files(folder / "image", ".jpg")[0]),
            self.thresholds.min_image_side,
            self.thresholds.max_image_pixels,
        )
        matrix = _read_matrix(folder / "intrinsics.txt", (3, 3), SkipReason.CORRUPT_CAMERA)
        k = _check_intrinsics(
            Intrinsics(matrix[0, 0], matrix[1, 1], matrix[0, 2] - 1.0, matrix[1, 2] - 1.0),
            image.size,
            folder / "intrinsics.txt",
        )
        up = None
        if self.use_up_vector:
            extrinsics_file = self._files(folder / "extrinsics", ".txt")[-1]
            rotation = _read_matrix(extrinsics_file, (3, 3), SkipReason.CORRUPT_CAMERA)
            if not np.isfinite(rotation).all() or abs(abs(np.linalg.det(rotation)) - 1) > 1e-3:
                raise SkipSample(SkipReason.CORRUPT_CAMERA, f"{extrinsics_file}: not a rotation")
            up = sun_up_camera(rotation)
        raw = _read_raster(self._files(folder / self.depth_folder, ".png")[0], SkipReason.CORRUPT_DEPTH)
        metres = decode_depth_sun(raw)
        # The toolbox clips readings beyond 8 m to 8 m; a clipped value is not a measurement.
        metres[metres >= 8.0] = 0.0
        depth = clean_depth(metres, image.size, self.thresholds.min_valid_depth_fraction)
        annotation = _read_json(folder / "annotation2Dfinal" / "index.json", SkipReason.CORRUPT_ANNOTATION)
        try:
            names = [None if o is None else o.get("name") for o in annotation["objects"]]
            polygons = []
            for polygon in annotation["frames"][0]["polygon"]:
                obj = int(polygon["object"])
                if 0 <= obj < len(names) and names[obj] and category_text(names[obj]) not in SUN_STRUCTURE:
                    polygons.append((obj + 1, [float(x) for x in polygon["x"]], [float(y) for y in polygon["y"]]))
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
            raise SkipSample(
                SkipReason.CORRUPT_ANNOTATION, f"{folder}: annotation2Dfinal/index.json {error!r}"
            ) from error
        labels = rasterise_polygons(polygons, image.size)
        instances = [
            # "chair:2" style names carry an instance label after the colon (readframeSUNRGBD.m).
            Instance(labels == value, category_text(names[value - 1].split(":")[0]), instance_id=int(value))
            for value in np.unique(labels)
            if value != 0
        ]
        return Frame(
            sample_id=str(folder.relative_to(self.root)) if folder != self.root else folder.name,
            source=self.name,
            image=image,
            depth=depth,
            intrinsics=k,
            instances=instances,
            depth_origin="sensor",
            intrinsics_origin="sunrgbd",
            up_camera=up,
            up_origin="sunrgbd:extrinsics" if up is not None else "",
            instances_origin="given",
        )


def read_scannet_label_map(path: str | Path) -> dict[int, tuple[str, str]]:
    """ScanNet's `scannetv2-labels.combined.tsv`: label id (`id` column, the values of `label-filt/*.png`) ->
    (`category`, `nyu40class`)."""
    with open(path, newline="") as handle:
        return {int(row["id"]): (row["category"], row["nyu40class"]) for row in csv.DictReader(handle, delimiter="\t")}


def read_scannet_axis_alignment(path: Path) -> np.ndarray | None:
    """The 4x4 `axisAlignment` of a ScanNet scene's `<scene>.txt` (world -> z-up aligned frame), or `None`."""
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "axisAlignment":
            numbers = np.array(value.split(), dtype=np.float64)
            if numbers.size == 16 and np.isfinite(numbers).all():
                return numbers.reshape(4, 4)
    return None


def _frame_number(path: Path) -> int:
    return int(path.stem) if path.stem.isdigit() else -1


def scannet_depth_to_color(intrinsic_dir: Path) -> np.ndarray | None:
    """Depth-to-colour camera transform from a SensReader export's `extrinsic_{color,depth}.txt` (each the sensor's
    pose on the device, usually the identity); `None` when they are missing."""
    color, depth = intrinsic_dir / "extrinsic_color.txt", intrinsic_dir / "extrinsic_depth.txt"
    if not (color.is_file() and depth.is_file()):
        return None
    return np.linalg.inv(np.loadtxt(color).reshape(4, 4)) @ np.loadtxt(depth).reshape(4, 4)


class ScanNetFrameSource:
    """Single frames of a ScanNet scene export, with its 2D instance masks and their labels.

    The export (`SensReader --export_color_images --export_depth_images --export_poses --export_intrinsics`, plus the
    scene's `*_2d-instance-filt.zip` and `*_2d-label-filt.zip`): `color/N.jpg` at full resolution (1296x968),
    `depth/N.png` (640x480, uint16 mm), `pose/N.txt` (camera-to-world 4x4), `intrinsic/intrinsic_color.txt` and
    `intrinsic_depth.txt` (4x4), `instance-filt/N.png` (instance ids, 0 = none) and `label-filt/N.png` (ScanNet
    label ids) at colour resolution (other sizes are resized to it, nearest neighbour), and the label map
    `scannetv2-labels.combined.tsv`. Depth is registered onto the colour grid (`geometry.register_depth`), so
    every pixel answer is a sensor reading. Up comes from the scene's `axisAlignment` (in `<scene>.txt`) and the
    frame's pose; with neither it is estimated. Walls, floors and ceilings are not objects.

    Args:
        root (`str` or `Path`): The scene folder.
        thresholds (`Thresholds`): Input limits.
        label_map (`str` or `Path`, *optional*): The `.tsv`; by default searched in the scene folder and its parents.
        frame_step (`int`): Use every `frame_step`-th annotated frame (consecutive frames are near-duplicates).
        use_up_vector (`bool`): Use the axis alignment (default) or estimate gravity.
    """

    name = "rgbd"
    label_map_name = "scannetv2-labels.combined.tsv"

    def __init__(
        self,
        root: str | Path,
        thresholds: Thresholds,
        label_map: str | Path | None = None,
        frame_step: int = 1,
        use_up_vector: bool = True,
    ):
        self.root = Path(root)
        self.thresholds, self.use_up_vector = thresholds, use_up_vector
        if frame_step < 1:
            raise ValueError(f"frame_step must be at least 1, got {frame_step}")
        if label_map is None:
            candidates = [d / self.label_map_name for d in (self.root, *list(self.root.parents)[:2])]
            label_map = next((c for c in candidates if c.is_file()), None)
            if label_map is None:
                raise ValueError(
                    f"no {self.label_map_name} in {self.root} or its parents; pass its path (--scannet-label-map)"
                )
        self.labels = read_scannet_label_map(label_map)
        intrinsic = self.root / "intrinsic"
        needed = [intrinsic / "intrinsic_color.txt", intrinsic / "intrinsic_depth.txt", self.root / "color"]
        missing = [str(path.relative_to(self.root)) for path in needed if not path.exists()]
        if missing:
            raise ValueError(f"{self.root} is not a ScanNet export (SensReader): missing {', '.join(missing)}")
        color_k, depth_k = (np.loadtxt(intrinsic / f"intrinsic_{kind}.txt") for kind in ("color", "depth"))
        self.color_intrinsics = Intrinsics(color_k[0, 0], color_k[1, 1], color_k[0, 2], color_k[1, 2])
        self.depth_intrinsics = Intrinsics(depth_k[0, 0], depth_k[1, 1], depth_k[0, 2], depth_k[1, 2])
        self.depth_to_color = scannet_depth_to_color(intrinsic)
        meta = self.root / f"{self.root.name}.txt"
        self.axis_alignment = read_scannet_axis_alignment(meta) if meta.is_file() else None
        # Frames without a 2D instance mask (the masks cover a subset of the frames) are not listed.
        annotated = {p.stem for p in (self.root / "instance-filt").glob("*.png")}
        colors = sorted(
            (
                p
                for p in (self.root / "color").iterdir()
                if p.suffix.lower() in (".jpg", ".png") and p.stem in annotated
            ),
            key=_frame_number,
        )
        self.frames = colors[::frame_step]

    def __len__(self) -> int:
        return len(self.frames)

    def up_camera(self, stem: str) -> np.ndarray | None:
        """World up (the aligned frame's z axis) in this frame's camera coordinates; `None` without alignment or
        with an invalid pose (ScanNet writes -inf where tracking was lost)."""
        if self.axis_alignment is None:
            return None
        try:
            pose = _read_matrix(self.root / "pose" / f"{stem}.txt", (4, 4), SkipReason.CORRUPT_CAMERA)
        except SkipSample:
            return None
        rotation = pose[:3, :3]
        if not np.isfinite(pose).all() or np.abs(rotation.T @ rotation - np.eye(3)).max() > 1e-3:
            return None
        up_world = self.axis_alignment[2, :3]
        return rotation.T @ (up_world / np.linalg.norm(up_world))

    def load(self, index: int) -> Frame:
        color = self.frames[index]
        stem = color.stem
        image, _ = decode_image(_read_bytes(color), self.thresholds.min_image_side, self.thresholds.max_image_pixels)
        k = _check_intrinsics(self.color_intrinsics, image.size, self.root / "intrinsic" / "intrinsic_color.txt")
        raw = _read_raster(self.root / "depth" / f"{stem}.png", SkipReason.CORRUPT_DEPTH)
        registered = register_depth(
            decode_depth_millimetres(raw), self.depth_intrinsics, k, image.size, self.depth_to_color
        )
        depth = clean_depth(registered, image.size, self.thresholds.min_valid_depth_fraction)
        ids = _read_raster(self.root / "instance-filt" / f"{stem}.png", SkipReason.CORRUPT_ANNOTATION)
        labels = _read_raster(self.root / "label-filt" / f"{stem}.png", SkipReason.CORRUPT_ANNOTATION)
        ids, labels = (
            a
            if a.shape == depth.shape
            else np.asarray(Image.fromarray(a.astype(np.int32)).resize(image.size, Image.Resampling.NEAREST))
            for a in (ids, labels)
        )
        instances = []
        for value in np.unique(ids):
            if value == 0:
                continue
            mask = ids == value
            label = int(np.bincount(labels[mask].astype(np.int64)).argmax())
            category, nyu40 = self.labels.get(label, ("", ""))
            if category and nyu40 not in SUN_STRUCTURE and category_text(category) not in SUN_STRUCTURE:
                instances.append(Instance(mask, category_text(category), instance_id=int(value)))
        up = self.up_camera(stem) if self.use_up_vector else None
        return Frame(
            sample_id=f"{self.root.name}/{stem}",
            source=self.name,
            image=image,
            depth=depth,
            intrinsics=k,
            instances=instances,
            depth_origin="sensor",
            intrinsics_origin="scannet",
            up_camera=up,
            up_origin="scannet:axis_alignment" if up is not None else "",
            instances_origin="given",
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
        # is_file: a folder named like an image or a broken link is not an image (it follows working links).
        self.files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        self.thresholds = thresholds

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> Frame:
        path = self.files[index]
        image, focal = decode_image(
            _read_bytes(path), self.thresholds.min_image_side, self.thresholds.max_image_pixels
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
        from datasets import Image as ImageFeature  # here: the other sources do not need `datasets`

        self.dataset = dataset.cast_column(image_column, ImageFeature(decode=False))
        self.image_column, self.thresholds, self.name = image_column, thresholds, name

    def __len__(self) -> int:
        return len(self.dataset)

    def load(self, index: int) -> Frame:
        cell = self.dataset[index][self.image_column]
        if cell is None or (cell.get("bytes") is None and not cell.get("path")):
            raise SkipSample(SkipReason.MISSING_FILE, f"{self.name}:{index}: no image in column {self.image_column!r}")
        data = cell["bytes"] if cell["bytes"] is not None else _read_bytes(Path(cell["path"]))
        image, focal = decode_image(data, self.thresholds.min_image_side, self.thresholds.max_image_pixels)
        return Frame(f"{self.name}:{index}", self.name, image, exif_focal_px=focal)
