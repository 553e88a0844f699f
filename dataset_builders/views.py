"""Posed multi-view inputs, geometric covisibility, view-pair selection and viewpoint expansion.

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057), stage 2 and 3 multi-view data: two anchor views
of one scene are chosen so that they overlap neither too much nor too little, then frames between the anchors make
4- and 8-view samples. Camera poses put every view in one world frame, so every cross-view answer follows from
depth and poses.

```
 sequence of posed frames  0 ---- a ------------------ b ---- M-1
                                  |   covisibility(a, b) in band      anchors
                                  a -- i1 -- i2 -- ... -- b           4 / 8 views: frames between the anchors
```

Covisibility of views `a` and `b` is the share of `a`'s pixels (with valid depth) whose 3D point lands inside `b`
at the depth `b` measures there (so occluded points do not count), taken the smaller way round: `min(a->b, b->a)`.
Poses are camera-to-world matrices in the OpenCV camera convention of `dataset_builders.geometry`.

Selection streams through a sequence: a later frame is a candidate only if its pose (read without decoding the
frame) lets it see enough of the anchor's points, at most `max_candidates` candidates per anchor are decoded and
measured, and sequences keep at most `max_cached_views` decoded views. A frame that cannot be used (invalid pose,
missing or corrupt file, another size) is skipped and counted in the selection, and the sample goes on.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections import Counter, OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from .frames import SkipReason, SkipSample, clean_depth, decode_image
from .geometry import Intrinsics, project, register_depth, unproject, valid_depth
from .scenes import Scene, generate_scene, look_at
from .sources import decode_depth_millimetres, scannet_depth_to_color
from .spatial import Thresholds


# Paper mix of stage 2 (160K 2-view, 30K 4-view, 10K 8-view samples).
DEFAULT_VIEW_MIX = {2: 160, 4: 30, 8: 10}
LPIPS_BAND = (0.35, 0.65)


@dataclass(frozen=True)
class SelectionThresholds:
    """Thresholds of view selection; recorded in provenance and in the dataset card.

    Args:
        min_covisibility (`float`): Lower end of the anchors' covisibility band (less: too little shared).
        max_covisibility (`float`): Upper end (more: the second view adds little).
        covisibility_pixels (`int`): Pixels sampled per direction to measure covisibility.
        depth_agreement (`float`): Relative depth difference under which a reprojected point counts as seen.
        depth_agreement_m (`float`): Absolute part of the same test (sensor noise at short range).
        max_pose_error (`float`): Largest deviation of a pose's rotation from orthonormal (`|R^T R - I|`, max entry).
        max_candidates (`int`): Later frames per anchor whose covisibility is measured (decoded), spread evenly over
            those whose pose can see enough of the anchor.
        frustum_points (`int`): Anchor points projected with the poses alone to find those frames.
        frustum_slack (`float`): How far below `min_covisibility` the pose-only share may be (it bounds the measured
            share from above, up to the sampling of the points).
    """

    min_covisibility: float = 0.3
    max_covisibility: float = 0.8
    covisibility_pixels: int = 3000
    depth_agreement: float = 0.03
    depth_agreement_m: float = 0.02
    max_pose_error: float = 1e-3
    max_candidates: int = 24
    frustum_points: int = 400
    frustum_slack: float = 0.05

    def to_dict(self) -> dict[str, float]:
        return {key: float(value) for key, value in self.__dict__.items()}


@dataclass(frozen=True)
class PosedView:
    """One frame with metric depth, intrinsics and its camera-to-world pose.

    Args:
        view_id (`str`): Stable id within its sequence (file name, render index).
        image (`PIL.Image.Image`): RGB image.
        depth (`np.ndarray`): `(H, W)` float32 depth in metres, NaN where unknown.
        intrinsics (`Intrinsics`): Pinhole intrinsics.
        camera_to_world (`np.ndarray`): `(4, 4)` pose.
        instances (`np.ndarray`, *optional*): `(H, W)` int32 object ids, the same id for one object in every view
            of the sequence, 0 for none (synthetic scenes).
        categories (`dict[int, str]`, *optional*): Category of each object id.
    """

    view_id: str
    image: Image.Image
    depth: np.ndarray
    intrinsics: Intrinsics
    camera_to_world: np.ndarray
    instances: np.ndarray | None = None
    categories: dict[int, str] | None = None

    def world_points(self, us: np.ndarray, vs: np.ndarray) -> np.ndarray:
        """World points `(N, 3)` of pixels `(us, vs)` (integer pixel centres with valid depth)."""
        camera = unproject(us.astype(np.float64), vs.astype(np.float64), self.depth[vs, us], self.intrinsics)
        return camera @ self.camera_to_world[:3, :3].T + self.camera_to_world[:3, 3]

    def camera_points(self, world: np.ndarray) -> np.ndarray:
        """Camera-frame coordinates `(N, 3)` of world points."""
        return (world - self.camera_to_world[:3, 3]) @ self.camera_to_world[:3, :3]

    def sees(self, world: np.ndarray, thresholds: SelectionThresholds) -> np.ndarray:
        """Whether each world point is inside the image and not hidden: its depth matches the measured depth."""
        camera = self.camera_points(world)
        height, width = self.depth.shape
        in_front = camera[:, 2] > 1e-3
        u, v, z = project(np.where(in_front[:, None], camera, 1.0), self.intrinsics)
        col, row = np.round(u).astype(np.int64), np.round(v).astype(np.int64)
        inside = in_front & (col >= 0) & (col < width) & (row >= 0) & (row < height)
        measured = np.full(len(world), np.nan)
        measured[inside] = self.depth[row[inside], col[inside]]
        with np.errstate(invalid="ignore"):
            agree = np.abs(measured - z) < thresholds.depth_agreement * z + thresholds.depth_agreement_m
        return inside & agree


@dataclass(frozen=True)
class FrameCamera:
    """What the poses alone say about a frame, without decoding it.

    Args:
        camera_to_world (`np.ndarray`): `(4, 4)` pose.
        intrinsics (`Intrinsics`): Of the (colour) image.
        size (`tuple[int, int]`): `(width, height)` of the image.
    """

    camera_to_world: np.ndarray
    intrinsics: Intrinsics
    size: tuple[int, int]

    def frustum_share(self, world: np.ndarray) -> float:
        """Share of world points in front of the camera and inside its image: an upper bound on how many of them it
        can see, whatever its depth shows."""
        camera = (world - self.camera_to_world[:3, 3]) @ self.camera_to_world[:3, :3]
        in_front = camera[:, 2] > 1e-3
        u, v, _ = project(np.where(in_front[:, None], camera, 1.0), self.intrinsics)
        width, height = self.size
        inside = in_front & (u > -0.5) & (u < width - 0.5) & (v > -0.5) & (v < height - 0.5)
        return float(inside.mean()) if len(world) else 0.0


class ViewCache:
    """Least-recently-used decoded views, at most `capacity` of them (memory stays bounded on long scans)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._views: OrderedDict[int, PosedView] = OrderedDict()

    def get(self, frame: int) -> PosedView | None:
        view = self._views.get(frame)
        if view is not None:
            self._views.move_to_end(frame)
        return view

    def put(self, frame: int, view: PosedView) -> PosedView:
        self._views[frame] = view
        self._views.move_to_end(frame)
        while len(self._views) > self.capacity:
            self._views.popitem(last=False)
        return view

    def __len__(self) -> int:
        return len(self._views)


# Decoded views each sequence keeps (a 1296x968 ScanNet view with its registered depth is about 9 MB).
MAX_CACHED_VIEWS = 16


def check_pose(pose: np.ndarray, max_error: float, view_id: str = "") -> np.ndarray:
    """The pose as a float64 `(4, 4)` array, or `SkipSample(DEGENERATE_POSE)` if it is not a rigid transform."""
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (4, 4) or not np.isfinite(pose).all():
        raise SkipSample(SkipReason.DEGENERATE_POSE, f"{view_id}: not a finite 4x4 matrix")
    rotation = pose[:3, :3]
    error = np.abs(rotation.T @ rotation - np.eye(3)).max()
    if error > max_error or np.linalg.det(rotation) < 0 or not np.allclose(pose[3], [0, 0, 0, 1]):
        raise SkipSample(SkipReason.DEGENERATE_POSE, f"{view_id}: rotation error {error:.2g}")
    return pose


def covisibility(a: PosedView, b: PosedView, thresholds: SelectionThresholds, rng: np.random.Generator) -> float:
    """`min(a->b, b->a)`: the smaller share of one view's valid pixels that the other view sees (module docstring)."""
    return min(_covisible_share(a, b, thresholds, rng), _covisible_share(b, a, thresholds, rng))


def _covisible_share(a: PosedView, b: PosedView, thresholds: SelectionThresholds, rng: np.random.Generator) -> float:
    flat = np.flatnonzero(valid_depth(a.depth))
    if len(flat) == 0:
        return 0.0
    flat = rng.choice(flat, size=min(len(flat), thresholds.covisibility_pixels), replace=False)
    vs, us = np.divmod(flat, a.depth.shape[1])
    return float(b.sees(a.world_points(us, vs), thresholds).mean())


def views_for_index(index: int, mix: dict[int, float]) -> int:
    """Number of views of sample `index`, so that every prefix of a build follows `mix` closely.

    The golden-ratio sequence `frac(index * phi)` is equidistributed, so cutting `[0, 1)` in proportion to `mix`
    gives each view count its share of any run of consecutive indices, without randomness that a resume could change.
    """
    total = sum(mix.values())
    position = math.modf((index + 1) * 0.6180339887498949)[0] * total
    for num_views, weight in sorted(mix.items()):
        if position < weight:
            return num_views
        position -= weight
    return max(mix)


class SyntheticSequence:
    """A camera path through a procedural scene (`dataset_builders.scenes`), rendered on demand.

    The camera slides sideways along the near wall, looking at the objects, so the overlap between frame 0 and
    frame `k` shrinks as `k` grows, like a hand-held scan.

    Args:
        scene (`Scene`): Scene whose `poses` are the path.
    """

    def __init__(self, scene: Scene, max_cached_views: int = MAX_CACHED_VIEWS):
        self.scene = scene
        self.cache = ViewCache(max_cached_views)

    @classmethod
    def generate(
        cls, seed: int, num_frames: int, image_size: tuple[int, int], num_objects: tuple[int, int]
    ) -> SyntheticSequence:
        scene = generate_scene(seed, num_objects, image_size, num_views=1)
        rng = np.random.default_rng([seed, 1])
        start = scene.poses[0][:3, 3]
        centroid = np.mean([o.center for o in scene.objects], axis=0)
        target = np.array([centroid[0], centroid[1], 0.4])
        # Sideways along the near wall (X), a little forward, 1.5 to 3 m in all; the direction is drawn per scene.
        travel = np.array([rng.choice([-1.0, 1.0]) * rng.uniform(1.5, 3.0), rng.uniform(0.0, 0.5), 0.0])
        limit = scene.room[:2] / 2 - 0.2
        poses = []
        for t in np.linspace(0.0, 1.0, num_frames):
            position = start + t * travel
            position[:2] = np.clip(position[:2], -limit, limit)
            poses.append(look_at(position, target))
        return cls(replace(scene, poses=poses))

    @property
    def sequence_id(self) -> str:
        return f"scene-{self.scene.seed}"

    def __len__(self) -> int:
        return len(self.scene.poses)

    def camera(self, frame: int) -> FrameCamera:
        return FrameCamera(self.scene.poses[frame], self.scene.intrinsics, self.scene.image_size)

    def view(self, frame: int) -> PosedView:
        cached = self.cache.get(frame)
        if cached is not None:
            return cached
        rendering = self.scene.render(frame)
        return self.cache.put(
            frame,
            PosedView(
                f"{self.sequence_id}-frame-{frame}",
                Image.fromarray(rendering.image),
                rendering.depth,
                rendering.intrinsics,
                rendering.camera_to_world,
                rendering.instances,
                {obj.instance_id: obj.category for obj in self.scene.objects},
            ),
        )


def read_trajectory_log(path: str | Path) -> list[np.ndarray]:
    """Camera-to-world poses of an Open3D / Redwood `trajectory.log`: a header line, then 4 rows, per frame."""
    rows = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    if len(rows) % 5:
        raise ValueError(f"{path}: {len(rows)} non-empty lines, expected 5 per frame")
    return [np.array(rows[i + 1 : i + 5], dtype=np.float64) for i in range(0, len(rows), 5)]


def _numeric(path: Path) -> tuple[int, str]:
    """ScanNet frames are numbered without padding (`10.jpg` after `9.jpg`)."""
    return (int(path.stem), "") if path.stem.isdigit() else (-1, path.stem)


@dataclass(frozen=True)
class PosedFrameFiles:
    """Files of one posed RGB-D frame (ScanNet and Redwood folders).

    Args:
        color (`Path`): Colour image.
        depth (`Path`): 16-bit depth in millimetres.
        intrinsics (`Intrinsics`): Of the colour image.
        camera_to_world (`np.ndarray`, *optional*): `(4, 4)` pose of the colour camera; `None` when its file could
            not be read (`pose_problem` says why).
        depth_intrinsics (`Intrinsics`, *optional*): Of the depth image when it differs from the colour image (other
            size or camera); the depth is then registered onto the colour grid (`geometry.register_depth`).
        depth_to_color (`np.ndarray`, *optional*): `(4, 4)` depth-to-colour camera transform (identity if `None`).
        pose_problem (`str`): Why the pose could not be read.
    """

    color: Path
    depth: Path
    intrinsics: Intrinsics
    camera_to_world: np.ndarray | None
    depth_intrinsics: Intrinsics | None = None
    depth_to_color: np.ndarray | None = None
    pose_problem: str = ""


def _read_pose(path: Path) -> tuple[np.ndarray | None, str]:
    """A 4x4 pose from a text file, or `None` and why (ScanNet writes `-inf` rows for lost tracking; those parse
    and are refused by `check_pose`)."""
    try:
        values = np.array(path.read_text().split(), dtype=np.float64)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        return None, f"{path.name}: {error}"
    if values.size != 16:
        return None, f"{path.name}: {values.size} numbers, expected 16"
    return values.reshape(4, 4), ""


def _intrinsics_file(path: Path) -> Intrinsics:
    matrix = np.loadtxt(path)
    return Intrinsics(matrix[0, 0], matrix[1, 1], matrix[0, 2], matrix[1, 2])


class PosedRGBDSequence:
    """A posed RGB-D sequence read from files; frames decoded on demand, bad ones raise `SkipSample`.

    Args:
        sequence_id (`str`): Name recorded in provenance.
        frames (`list[PosedFrameFiles]`): In capture order.
        thresholds (`Thresholds`): Input limits of the single-view builder (image size, valid depth share).
        selection (`SelectionThresholds`): Pose checks.
        max_cached_views (`int`): Decoded views kept (least recently used first out).
    """

    def __init__(
        self,
        sequence_id: str,
        frames: list[PosedFrameFiles],
        thresholds: Thresholds,
        selection: SelectionThresholds,
        max_cached_views: int = MAX_CACHED_VIEWS,
    ):
        self.sequence_id, self.frames, self.thresholds, self.selection = sequence_id, frames, thresholds, selection
        self.cache = ViewCache(max_cached_views)
        self._sizes: dict[int, tuple[int, int]] = {}

    @classmethod
    def from_redwood(
        cls, root: str | Path, thresholds: Thresholds, selection: SelectionThresholds
    ) -> PosedRGBDSequence:
        """`color/*.jpg`, `depth/*.png` (mm), `camera_primesense.json` (column-major K) and `trajectory.log`."""
        root = Path(root)
        camera = json.loads((root / "camera_primesense.json").read_text())
        matrix = np.array(camera["intrinsic_matrix"], dtype=np.float64).reshape(3, 3).T
        intrinsics = Intrinsics(matrix[0, 0], matrix[1, 1], matrix[0, 2], matrix[1, 2])
        colors = sorted(p for p in (root / "color").iterdir() if p.suffix.lower() in (".jpg", ".png"))
        poses = read_trajectory_log(root / "trajectory.log")
        if len(poses) != len(colors):
            raise ValueError(f"{root}: {len(colors)} colour frames but {len(poses)} poses in trajectory.log")
        frames = [
            PosedFrameFiles(c, root / "depth" / f"{c.stem}.png", intrinsics, pose)
            for c, pose in zip(colors, poses, strict=True)
        ]
        return cls(root.name, frames, thresholds, selection)

    @classmethod
    def from_scannet(
        cls, root: str | Path, thresholds: Thresholds, selection: SelectionThresholds
    ) -> PosedRGBDSequence:
        """A ScanNet export (SensReader): `color/N.jpg` at full resolution (1296x968) with
        `intrinsic/intrinsic_color.txt`, `depth/N.png` (640x480, mm) with `intrinsic/intrinsic_depth.txt`, the
        sensors' `extrinsic_{color,depth}.txt` when present, and `pose/N.txt` (camera-to-world 4x4). Depth is
        registered onto the colour grid, so every answer refers to the colour image. An export whose colour was
        resized to the depth (no `intrinsic_color.txt`) uses the depth intrinsics for both. Lost tracking (ScanNet
        writes `-inf` poses) and unreadable poses make that frame a `DEGENERATE_POSE` skip.
        """
        root = Path(root)
        intrinsic = root / "intrinsic"
        missing = [
            name for name in ("color", "depth", "pose", "intrinsic/intrinsic_depth.txt") if not (root / name).exists()
        ]
        if missing:
            raise ValueError(f"{root} is not a ScanNet export (SensReader): missing {', '.join(missing)}")
        depth_k = _intrinsics_file(intrinsic / "intrinsic_depth.txt")
        registered = not (intrinsic / "intrinsic_color.txt").is_file()
        color_k = depth_k if registered else _intrinsics_file(intrinsic / "intrinsic_color.txt")
        depth_to_color = None if registered else scannet_depth_to_color(intrinsic)
        colors = sorted((p for p in (root / "color").iterdir() if p.suffix.lower() in (".jpg", ".png")), key=_numeric)
        frames = []
        for color in colors:
            pose, problem = _read_pose(root / "pose" / f"{color.stem}.txt")
            frames.append(
                PosedFrameFiles(
                    color,
                    root / "depth" / f"{color.stem}.png",
                    color_k,
                    pose,
                    None if registered else depth_k,
                    depth_to_color,
                    problem,
                )
            )
        return cls(root.name, frames, thresholds, selection)

    def __len__(self) -> int:
        return len(self.frames)

    def _pose(self, frame: int) -> np.ndarray:
        files = self.frames[frame]
        if files.camera_to_world is None:
            raise SkipSample(SkipReason.DEGENERATE_POSE, f"frame {frame}: {files.pose_problem}")
        return check_pose(files.camera_to_world, self.selection.max_pose_error, files.color.name)

    def camera(self, frame: int) -> FrameCamera:
        """Pose, intrinsics and image size of a frame, reading only the image header; `SkipSample` when its pose
        is invalid or its image is missing or unreadable."""
        pose = self._pose(frame)
        files = self.frames[frame]
        if frame not in self._sizes:
            try:
                with Image.open(files.color) as image:
                    self._sizes[frame] = image.size
            except FileNotFoundError as error:
                raise SkipSample(SkipReason.MISSING_VIEW, f"frame {frame}: {files.color.name} is missing") from error
            except (OSError, SyntaxError, ValueError) as error:
                raise SkipSample(SkipReason.CORRUPT_IMAGE, f"frame {frame}: {error}") from error
        return FrameCamera(pose, files.intrinsics, self._sizes[frame])

    def view(self, frame: int) -> PosedView:
        cached = self.cache.get(frame)
        if cached is not None:
            return cached
        files = self.frames[frame]
        if not files.color.exists() or not files.depth.exists():
            raise SkipSample(SkipReason.MISSING_VIEW, f"frame {frame}: {files.color.name} or its depth is missing")
        pose = self._pose(frame)
        image, _ = decode_image(
            files.color.read_bytes(), self.thresholds.min_image_side, self.thresholds.max_image_pixels
        )
        try:
            raw = np.asarray(Image.open(files.depth))
        except (OSError, SyntaxError, ValueError) as error:
            raise SkipSample(SkipReason.CORRUPT_DEPTH, str(error)) from error
        metres = decode_depth_millimetres(raw)
        if files.depth_intrinsics is not None:
            metres = register_depth(metres, files.depth_intrinsics, files.intrinsics, image.size, files.depth_to_color)
        depth = clean_depth(metres, image.size, self.thresholds.min_valid_depth_fraction)
        return self.cache.put(frame, PosedView(files.color.name, image, depth, files.intrinsics, pose))


@dataclass(frozen=True)
class ViewSelection:
    """Frames of one sample, in order (anchors first and last), with the measurements that chose them.

    Args:
        frames (`list[int]`): Frame indices in the sequence.
        views (`list[PosedView]`): The views.
        anchor_covisibility (`float`): Covisibility of the two anchors.
        neighbour_covisibility (`list[float]`): Covisibility of each consecutive pair of the sample's views.
        lpips (`float`, *optional*): LPIPS distance of the anchors, when measured.
        skipped_frames (`dict[str, int]`): Frames passed over while selecting, by `SkipReason` value.
        candidates (`int`): Later frames whose covisibility with the first anchor was measured.
    """

    frames: list[int]
    views: list[PosedView]
    anchor_covisibility: float
    neighbour_covisibility: list[float]
    lpips: float | None = None
    skipped_frames: dict[str, int] = field(default_factory=dict)
    candidates: int = 0


class LpipsScorer:
    """LPIPS distance between two views (the `lpips` package and its AlexNet weights, loaded once).

    Raises:
        RuntimeError: When the package is not installed or its backbone weights cannot be loaded (no network and
            nothing cached); select by geometric covisibility instead (`--selection covisibility`).
    """

    def __init__(self):
        if importlib.util.find_spec("lpips") is None:
            raise RuntimeError(
                "LPIPS view selection needs the `lpips` package (pip install lpips) and its AlexNet weights; "
                "use --selection covisibility, which needs only depth and poses."
            )
        import lpips
        import torch

        self._torch = torch
        try:
            self.model = lpips.LPIPS(net="alex", verbose=False).eval()
        except (OSError, RuntimeError) as error:  # torchvision fetches the backbone on first use
            raise RuntimeError(
                "LPIPS backbone weights are not available on this machine (they are downloaded by torchvision on "
                f"first use: {error}); use --selection covisibility, which works offline."
            ) from error

    def __call__(self, a: Image.Image, b: Image.Image) -> float:
        def tensor(image: Image.Image):
            array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
            return self._torch.from_numpy(array).permute(2, 0, 1)[None]

        with self._torch.no_grad():
            return float(self.model(tensor(a), tensor(b)).item())


def _frame_or_skip(get, frame: int, skipped: Counter):
    """`get(frame)`, or `None` with the frame's skip reason counted."""
    try:
        return get(frame)
    except SkipSample as skip:
        skipped[skip.reason.value] += 1
        return None


def select_views(
    sequence,
    start: int,
    num_views: int,
    thresholds: SelectionThresholds,
    rng: np.random.Generator,
    lpips: LpipsScorer | None = None,
) -> ViewSelection:
    """Anchors `start` and a later frame with covisibility (and LPIPS, when given) in band, plus frames between.

    Streaming (module docstring): later frames whose pose cannot see `min_covisibility` of the anchor's points are
    passed over without decoding; of the rest at most `thresholds.max_candidates`, spread evenly, are decoded and
    measured. Frames that cannot be used are skipped and counted (`ViewSelection.skipped_frames`); frames between
    the anchors are the usable ones nearest to even spacing.

    Args:
        sequence (`SyntheticSequence`, `PosedRGBDSequence` or `ReconstructedSequence`): Frames with `len()`,
            `camera(i)` (pose, intrinsics and size without decoding) and `view(i)`.
        start (`int`): First anchor.
        num_views (`int`): 2, 4 or 8.
        thresholds (`SelectionThresholds`): Band and measurement settings.
        rng (`np.random.Generator`): Picks among the frames in band and the sampled pixels.
        lpips (`LpipsScorer`, *optional*): When given, the anchors' LPIPS distance must lie in `LPIPS_BAND` too.

    Raises:
        SkipSample: The first anchor's own reason (missing, corrupt, degenerate pose); `TOO_FEW_VIEWS_BETWEEN`;
            `NO_OVERLAP` or `NO_VIEW_PAIR_IN_BAND`; or, when no later frame could be measured because those that
            could were unusable, their most common reason.
    """
    first = sequence.view(start)
    later = range(start + num_views - 1, len(sequence))
    if len(later) == 0:
        raise SkipSample(SkipReason.TOO_FEW_VIEWS_BETWEEN, f"{num_views} views from frame {start} of {len(sequence)}")
    skipped: Counter = Counter()
    # Points of the anchor that the poses alone are checked against (a frame that cannot hold a share of them in
    # its image cannot see that share, whatever its depth shows).
    flat = np.flatnonzero(valid_depth(first.depth))
    if len(flat) == 0:
        raise SkipSample(SkipReason.NO_OVERLAP, f"frame {start} has no valid depth")
    sample = rng.choice(flat, size=min(len(flat), thresholds.frustum_points), replace=False)
    rows, cols = np.divmod(sample, first.depth.shape[1])
    anchor_points = first.world_points(cols, rows)
    reachable = []
    for frame in later:
        camera = _frame_or_skip(sequence.camera, frame, skipped)
        if camera is None:
            continue
        if camera.size != first.image.size:
            skipped[SkipReason.VIEW_SIZE_MISMATCH.value] += 1
            continue
        if camera.frustum_share(anchor_points) >= thresholds.min_covisibility - thresholds.frustum_slack:
            reachable.append(frame)
    if len(reachable) > thresholds.max_candidates:
        # Evenly spread, from a random offset: near and far partners alike, bounded work per anchor.
        step = len(reachable) / thresholds.max_candidates
        offset = rng.uniform(0, step)
        reachable = [reachable[int(offset + i * step)] for i in range(thresholds.max_candidates)]
    in_band, best, measured = [], 0.0, 0
    for frame in reachable:
        view = _frame_or_skip(sequence.view, frame, skipped)
        if view is None:
            continue
        if view.image.size != first.image.size:
            skipped[SkipReason.VIEW_SIZE_MISMATCH.value] += 1
            continue
        measured += 1
        value = covisibility(first, view, thresholds, rng)
        best = max(best, value)
        if thresholds.min_covisibility <= value <= thresholds.max_covisibility:
            in_band.append((frame, value))
    if measured == 0 and skipped:
        # Nothing measured because the frames that could have been were unusable: say why.
        reason = SkipReason(skipped.most_common(1)[0][0])
        raise SkipSample(reason, f"no usable later frame for frame {start}: {dict(skipped)}")
    if best == 0.0:
        raise SkipSample(SkipReason.NO_OVERLAP, f"frame {start} shares nothing with any later frame")
    lpips_value = None
    if lpips is not None:
        scored = [(f, c, lpips(first.image, sequence.view(f).image)) for f, c in in_band]
        in_band = [(f, c) for f, c, d in scored if LPIPS_BAND[0] <= d <= LPIPS_BAND[1]]
        lpips_of = {f: d for f, _, d in scored}
    if not in_band:
        raise SkipSample(SkipReason.NO_VIEW_PAIR_IN_BAND, f"best covisibility {best:.2f}")
    end, anchor_value = in_band[int(rng.integers(len(in_band)))]
    if lpips is not None:
        lpips_value = lpips_of[end]
    frames, views = [start], [first]
    targets = np.linspace(start, end, num_views)[1:-1]
    for position, target in enumerate(targets):
        # The usable frame nearest to even spacing, after the previous one and leaving room for the rest.
        low, high = frames[-1] + 1, end - (len(targets) - position)
        order = sorted(range(low, high + 1), key=lambda f: (abs(f - target), f))
        for frame in order:
            view = _frame_or_skip(sequence.view, frame, skipped)
            if view is not None and view.image.size == first.image.size:
                frames.append(frame)
                views.append(view)
                break
            if view is not None:
                skipped[SkipReason.VIEW_SIZE_MISMATCH.value] += 1
        else:
            raise SkipSample(SkipReason.TOO_FEW_VIEWS_BETWEEN, f"no usable frames between {start} and {end}")
    frames.append(end)
    views.append(sequence.view(end))
    neighbours = [covisibility(a, b, thresholds, rng) for a, b in zip(views[:-1], views[1:], strict=True)]
    return ViewSelection(frames, views, anchor_value, neighbours, lpips_value, dict(skipped), measured)
