"""From a `Frame` (image, depth, intrinsics, masks) to the 3D description the questions are written from.

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057): objects become point clouds, cleaned (mask
erosion, flying pixels at depth jumps, small 3D parts away from the object), placed in a gravity-aligned frame, and boxed by yaw-oriented cubes. Conventions are those of `dataset_builders.geometry`.

```
 depth + K --unproject--> points --(erode, flying pixels, 3D parts)--> object clouds --fit--> cubes
  up vector of the dataset, or estimate_gravity (trusted or camera axes) --> answer frame ----------^
```

Dense depth (sensor maps with dropouts, renderings, depth models) and sparse depth (point clouds subsampled onto the
pixel grid) take the same path; on sparse depth the pixel-grid tests work on windows of a few readings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from .frames import Frame, SkipReason, SkipSample
from .geometry import (
    SPARSE_NEIGHBOUR_SHARE,
    Cube,
    GravityEstimate,
    GravityFrame,
    connected_parts,
    depth_edges,
    discontinuities,
    erode_mask,
    estimate_gravity,
    fill_from_nearest,
    fit_cube,
    occluded_boundary_fraction,
    sparse_window_px,
    unproject,
    valid_depth,
    valid_neighbour_share,
)


@dataclass(frozen=True)
class Thresholds:
    """Every geometric threshold of the builder; recorded in each row's provenance and in the dataset card.

    Args:
        erosion_px (`int`): Mask erosion before unprojection.
        depth_edge_jump (`float`): Relative depth jump between neighbours that marks a depth edge.
        max_points_per_object (`int`): Object pixels are subsampled to this many points (speed; extents shrink by
            about one point spacing).
        max_top_row_m (`float`): Largest depth one pixel row spans on an object's top (distance / (focal length x
            sine of the elevation under which the top is seen; on sparse depth times the square root of the spacing
            between readings) for its cube's centre and size to be stated. Flatter or farther views lose the back of the top
            to the last few rows (erosion, the depth jump behind it), and the cube covers only its front; tops
            above the eye are not seen at all. Measured: 0.04 m keeps cube centres within 0.12 m of the true boxes
            on sensor-like depth (README.md, "Geometry on real depth"). Relations between centres are asked
            either way.
        min_object_pixels (`int`): Smallest mask (after erosion) an object needs to be asked about.
        max_occluded_fraction (`float`): Largest share of a mask's outer outline that may be hidden (something in
            front, or another object touching it from above or the side).
        max_tilt_deg (`float`): Largest angle between the floor normal and the camera's up direction.
        gravity_points (`int`): Scene points the up direction is estimated from (when the source gives none).
        gravity_agreement_deg (`float`): Angle within which a resampled up estimate agrees with the estimate.
        min_gravity_confidence (`float`): Smallest share of agreeing resampled estimates for the estimate to be
            trusted; below it the sample is not gravity-aligned.
        max_gravity_inconsistency_deg (`float`): Largest angle between the estimate and the up direction implied by
            the vertical surfaces (walls, furniture sides).
        part_gap_m (`float`): Largest 3D gap within one part of an object's point cloud.
        min_part_share (`float`): Share of an object's points from which a part separated by more than
            `part_gap_m` (a headboard behind the pillows) is kept; smaller ones (stray readings, background a mask
            leaked onto) are dropped.

        relation_margin_m (`float`): Near-tie margin: the separation of two cube centres along a relation's axis
            under which the relation is not asserted. On measured depth the estimated separation must exceed it by
            the depth origin's centre error as well (`Tolerances`), so that the true separation exceeds it too.
        depth_margin_m (`float`): Depth difference under which two marked points are a near-tie.
        depth_margin_fraction (`float`): Same, relative to the nearer point's depth (the larger margin applies).
        min_valid_depth_fraction (`float`): Smallest share of pixels with valid depth.
        min_image_side (`int`): Shorter image side below which the input is skipped.
        max_image_pixels (`int`): Pixel count above which the input is skipped before decoding.
    """

    erosion_px: int = 1
    depth_edge_jump: float = 0.05
    max_points_per_object: int = 1500
    max_top_row_m: float = 0.04
    min_object_pixels: int = 300
    max_occluded_fraction: float = 0.1
    max_tilt_deg: float = 45.0
    gravity_points: int = 6000
    gravity_agreement_deg: float = 2.0
    min_gravity_confidence: float = 0.9
    max_gravity_inconsistency_deg: float = 5.0
    part_gap_m: float = 0.15
    min_part_share: float = 0.01
    relation_margin_m: float = 0.15
    depth_margin_m: float = 0.05
    depth_margin_fraction: float = 0.03
    min_valid_depth_fraction: float = 0.3
    min_image_side: int = 32
    max_image_pixels: int = 4096 * 4096

    def to_dict(self) -> dict[str, float]:
        return {key: float(value) for key, value in asdict(self).items()}


def depth_origin_kind(depth_origin: str) -> str:
    """`synthetic`, `sensor` or `estimated` (a depth model's id) for a `Frame.depth_origin`."""
    return depth_origin if depth_origin in ("synthetic", "sensor") else "estimated"


@dataclass(frozen=True)
class DepthOriginError:
    """Measured error of cubes and distances for one kind of depth, from which its tolerances and margins follow.

    Args:
        centre_m (`float`): Bound on the error of a measurable cube's centre along one answer-frame axis, metres.
        centre_fraction (`float`): Part of that bound that grows with the object's distance (a fraction of it):
            the scale error of depth models.
        size_m (`float`): Bound on the error of a measurable cube's size, metres.
        distance_fraction (`float`): Bound on the relative error of a centre distance between measurable cubes.
        depth_margin_m (`float`): Depth difference under which two marked points are a near-tie.
        depth_margin_fraction (`float`): Same, relative to the nearer depth (the larger margin applies).
    """

    centre_m: float
    centre_fraction: float
    size_m: float
    distance_fraction: float
    depth_margin_m: float
    depth_margin_fraction: float


# Each bound is the largest error measured (rounded up), over the cubes that are stated (measurable objects) and
# the distances between them, with `python benchmarks/bench_geometry_real.py` (README.md, "Geometry on real
# depth"):
# - synthetic: exact depth and masks; standard scenes (tests/test_dataset_multiturn.py) and scenes seen from low,
#   flat, rolled SUN RGB-D-like cameras (`--write-synthetic --degrade none`): centres within 0.04 m along any axis,
#   sizes within 0.07 m, distances within 1.2 %.
# - sensor: SUN RGB-D frames with their annotated boxes (`../shared/data/annotated`), and synthetic scenes degraded
#   like a Kinect (noise growing with depth squared, dropouts, shadows and flying pixels at depth jumps, millimetre
#   steps) or subsampled to 13 % like SUN RGB-D's point clouds: centres within 0.11 m along any axis, sizes within
#   0.16 m on the synthetic scenes and 0.30 m on the real frames (whose manual boxes are looser than the objects),
#   distances within 2.7 %.
# - estimated (a depth model's id): no model runs offline, so synthetic scenes with a depth model's errors simulated
#   (`--degrade model`: up to 8 % global scale and 4 % smooth distortion, as the 5-10 % AbsRel published indoors for
#   Depth Pro and Depth Anything V2 metric): centres within 0.2 m at 2-6 m, growing with distance, sizes within
#   0.09 m, distances within 7.5 %.
# Pixel near-ties: a Kinect's depth noise is about 4.6 cm at 5 m (Nguyen, Izadi & Lovell 2012), a third of the
# sensor margin there; a depth model's relative error between two points is its smooth distortion.
DEPTH_ORIGIN_ERRORS = {
    "synthetic": DepthOriginError(0.05, 0.0, 0.1, 0.02, 0.05, 0.03),
    "sensor": DepthOriginError(0.15, 0.0, 0.3, 0.05, 0.05, 0.03),
    "estimated": DepthOriginError(0.1, 0.08, 0.15, 0.1, 0.1, 0.1),
}


@dataclass(frozen=True)
class Tolerances:
    """Tolerances and near-tie margins of one sample's questions, from its depth origin (recorded in provenance).

    Args:
        depth_origin (`str`): `synthetic`, `sensor` or `estimated`.
        relation_margin_m (`float`): The near-tie margin (`Thresholds.relation_margin_m`); `relation_margin` adds
            both objects' centre uncertainty to it.
        centre_m (`float`): Bound on a measurable cube centre's error along one axis (`DepthOriginError`).
        centre_fraction (`float`): Part of it that grows with distance.
        size_m (`float`): Bound on a measurable cube's size error.
        distance_fraction (`float`): Relative tolerance stated on a distance.
        depth_margin_m (`float`): Near-tie margin of two marked points' depths.
        depth_margin_fraction (`float`): Same, relative to the nearer depth.
    """

    depth_origin: str
    relation_margin_m: float
    centre_m: float
    centre_fraction: float
    size_m: float
    distance_fraction: float
    depth_margin_m: float
    depth_margin_fraction: float

    @classmethod
    def for_origin(cls, depth_origin: str, thresholds: Thresholds) -> Tolerances:
        kind = depth_origin_kind(depth_origin)
        error = DEPTH_ORIGIN_ERRORS[kind]
        # The configured pixel margins are the smallest used (the multi-view builders narrow them per sequence).
        return cls(
            kind,
            thresholds.relation_margin_m,
            error.centre_m,
            error.centre_fraction,
            error.size_m,
            error.distance_fraction,
            max(thresholds.depth_margin_m, error.depth_margin_m) if kind != "synthetic" else thresholds.depth_margin_m,
            max(thresholds.depth_margin_fraction, error.depth_margin_fraction)
            if kind != "synthetic"
            else thresholds.depth_margin_fraction,
        )

    def centre_bound(self, distance_m: float) -> float:
        """Bound on a measurable cube centre's error along one axis, for an object `distance_m` away."""
        return self.centre_m + self.centre_fraction * distance_m

    def to_dict(self) -> dict[str, float | str]:
        return asdict(self)


@dataclass
class SceneObjectEstimate:
    """One detected object after geometry.

    Args:
        index (`int`): Position in `Frame.instances`.
        category (`str`): Category name.
        pixels (`int`): Mask size in pixels.
        mask (`np.ndarray`): `(H, W)` mask (markers are placed with `mask_anchor`); on sparse depth, the mask with
            the gaps between its readings closed.
        eligible (`bool`): Whole, unoccluded and large enough for relation questions.
        cube (`Cube`, *optional*): Answer-frame cube (eligible objects).
        points (`np.ndarray`, *optional*): Cleaned answer-frame points (eligible objects).
        measurable (`bool`): Eligible and seen from above steeply enough that the cube spans the whole object, so
            its centre and size may be stated (cube and distance questions).
        centre_uncertainty (`np.ndarray`, *optional*): `(3,)` bound on the error of the cube centre along each
            answer-frame axis (`object_centre_uncertainty`), which relation margins add.
    """

    index: int
    category: str
    pixels: int
    mask: np.ndarray
    eligible: bool
    cube: Cube | None = None
    points: np.ndarray | None = None
    measurable: bool = False
    centre_uncertainty: np.ndarray | None = None


@dataclass
class SpatialScene:
    """Everything the question writer needs.

    Args:
        depth (`np.ndarray`): `(H, W)` depth, NaN where invalid.
        edges (`np.ndarray`): `(H, W)` depth edges and holes (pixel questions avoid them).
        frame (`GravityFrame`): Camera-to-answer rotation (`gravity.frame`).
        objects (`list[SceneObjectEstimate]`): One per instance.
        gravity (`GravityEstimate`): How the frame was obtained (given, estimated and trusted, or camera axes).
        tolerances (`Tolerances`): Margins and tolerances of the frame's depth origin.
        sparse (`bool`): Whether the depth is sparse (see `geometry.SPARSE_NEIGHBOUR_SHARE`).
    """

    depth: np.ndarray
    edges: np.ndarray
    frame: GravityFrame
    objects: list[SceneObjectEstimate]
    gravity: GravityEstimate
    tolerances: Tolerances
    sparse: bool = False


def mask_anchor(mask: np.ndarray) -> tuple[int, int]:
    """`(u, v)` of the mask pixel farthest from its outline, where a marker stays on the object."""
    rows, cols = np.nonzero(np.any(mask, axis=1))[0], np.nonzero(np.any(mask, axis=0))[0]
    crop = np.pad(mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], 1)
    v, u = np.unravel_index(np.argmax(ndimage.distance_transform_edt(crop)), crop.shape)
    return int(u - 1 + cols[0]), int(v - 1 + rows[0])


def scene_gravity(
    frame: Frame, usable: np.ndarray, thresholds: Thresholds, rng: np.random.Generator
) -> GravityEstimate:
    """The dataset's up vector when the frame has one, else `estimate_gravity` on points of `usable` pixels."""
    if frame.up_camera is not None:
        return GravityEstimate.given(frame.up_camera, frame.up_origin or "source")
    vs, us = np.nonzero(usable)
    if len(vs) == 0:
        return estimate_gravity(np.zeros((0, 3)), rng)
    pick = rng.choice(len(vs), size=min(len(vs), thresholds.gravity_points), replace=False)
    points = unproject(
        us[pick].astype(np.float64), vs[pick].astype(np.float64), frame.depth[vs[pick], us[pick]], frame.intrinsics
    )
    return estimate_gravity(
        points,
        rng,
        max_tilt_deg=thresholds.max_tilt_deg,
        agreement_deg=thresholds.gravity_agreement_deg,
        min_confidence=thresholds.min_gravity_confidence,
        max_inconsistency_deg=thresholds.max_gravity_inconsistency_deg,
    )


def analyse(frame: Frame, thresholds: Thresholds, rng: np.random.Generator) -> SpatialScene:
    """Gravity frame and per-object cubes of a frame that has depth, intrinsics and instances.

    Args:
        frame (`Frame`): Input with `depth`, `intrinsics` and `instances` set (`up_camera` when known).
        thresholds (`Thresholds`): Geometric thresholds.
        rng (`np.random.Generator`): Randomness for subsampling and the gravity estimate (seeded per sample).

    Raises:
        SkipSample: `TOO_FEW_OBJECTS` when fewer than two objects can be asked about.
    """
    depth, k = frame.depth, frame.intrinsics
    valid = valid_depth(depth)
    share = valid_neighbour_share(depth)
    sparse = share < SPARSE_NEIGHBOUR_SHARE
    window = sparse_window_px(share)
    flying = discontinuities(depth, thresholds.depth_edge_jump, window)
    # Pixel questions avoid depth jumps, and on dense depth the borders of dropouts too (readings next to a hole are
    # the least reliable); on sparse depth the holes are sampling, so every reading off a jump is usable.
    edges = (~valid | flying) if sparse else depth_edges(depth, thresholds.depth_edge_jump)
    gravity = scene_gravity(frame, valid & ~flying, thresholds, rng)
    frame_axes = gravity.frame
    tolerances = Tolerances.for_origin(frame.depth_origin, thresholds)

    # Masks on sparse depth get the gaps between their readings closed.
    fill_radius = window + _SHADOW_PX
    instances = frame.instances or []
    regions = [_closed(instance.mask, window) if sparse else instance.mask for instance in instances]
    objects = []
    height, width = depth.shape
    owner = np.full(depth.shape, -1, dtype=np.int32)  # which instance each pixel belongs to
    for index, region in enumerate(regions):
        owner[region & (owner < 0)] = index
    pad = thresholds.erosion_px + window + 1
    # On sparse depth the back of a top is found less sharply: measured on 13 %-sparse frames, scaling the row depth
    # by the square root of the spacing between readings (1 / sqrt(sampling rate) pixels) keeps the same error.
    reading_spacing = (1.0 / np.sqrt(max(share, 1e-3))) ** 0.5 if sparse else 1.0
    for index, (instance, region) in enumerate(zip(instances, regions, strict=True)):
        rows, cols = np.nonzero(region.any(axis=1))[0], np.nonzero(region.any(axis=0))[0]
        if len(rows) == 0:
            continue
        # Everything per object runs on its bounding box (grown by the erosion), not on the whole image.
        r0, r1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, height)
        c0, c1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, width)
        mask = region[r0:r1, c0:c1]
        crop_valid, crop_depth = valid[r0:r1, c0:c1], depth[r0:r1, c0:c1]
        pixels = int((instance.mask[r0:r1, c0:c1] & crop_valid).sum())
        if pixels == 0:
            continue
        interior = erode_mask(mask, thresholds.erosion_px)
        core = interior & instance.mask[r0:r1, c0:c1] & crop_valid & ~flying[r0:r1, c0:c1]
        # Area the readings stand for: every pixel on dense depth, the closed region's interior on sparse depth.
        area = int((interior & ~flying[r0:r1, c0:c1]).sum()) if sparse else int(core.sum())
        cut_off = _cut_off(mask, (r0, c0), (height, width))
        eligible = (
            area >= thresholds.min_object_pixels
            and int(core.sum()) >= min(thresholds.min_object_pixels, 30)
            and not cut_off
            and occluded_boundary_fraction(
                mask,
                _outline_depth(crop_depth, mask, fill_radius),
                (owner[r0:r1, c0:c1] >= 0) & (owner[r0:r1, c0:c1] != index),
            )
            <= thresholds.max_occluded_fraction
        )
        estimate = SceneObjectEstimate(index, instance.category, pixels, region, eligible)
        if eligible:
            points = object_points(core, (r0, c0), depth, k, thresholds, rng)
            points = frame_axes.to_answer(points)
            cube = fit_cube(points)
            estimate.points, estimate.cube = points, cube
            # Without a trusted up direction it is unknown whether the top is seen, and the cube would be boxed in
            # a wrong frame: no cube or distance is stated.
            estimate.measurable = bool(
                frame_axes.aligned and top_row_depth(cube, k, reading_spacing) <= thresholds.max_top_row_m
            )
            estimate.centre_uncertainty = object_centre_uncertainty(cube, estimate.measurable, tolerances)
        objects.append(estimate)
    if sum(o.eligible for o in objects) < 2:
        raise SkipSample(SkipReason.TOO_FEW_OBJECTS, f"{sum(o.eligible for o in objects)} usable objects")
    return SpatialScene(depth, edges, frame_axes, objects, gravity, tolerances, sparse)


def object_centre_uncertainty(cube: Cube, measurable: bool, tolerances: Tolerances) -> np.ndarray:
    """Bound on a cube centre's error along each answer-frame axis.

    A measurable cube (its top seen over the whole footprint) is off by at most the depth origin's centre bound. An
    object seen without its back has a cube that covers its front only: the true centre lies farther along the
    horizontal viewing direction, by half the hidden depth, which is taken to be at most the larger visible
    footprint side (furniture is rarely deeper than it is wide, seen from any side). The vertical extent of an
    unoccluded object is seen either way.
    """
    horizontal = np.array([cube.center[0], cube.center[1], 0.0])
    distance = float(np.linalg.norm(horizontal))
    bound = np.full(3, tolerances.centre_bound(float(np.linalg.norm(cube.center))))
    if not measurable:
        direction = np.abs(horizontal / max(distance, 1e-6))
        bound += 0.5 * max(float(cube.size[0]), float(cube.size[1])) * direction
    return bound


def cube_tolerance(scene: SpatialScene, obj: SceneObjectEstimate) -> float:
    """Tolerance stated on each metric entry of a measurable object's cube: its centre bound or the size bound."""
    return max(scene.tolerances.size_m, float(obj.centre_uncertainty.max()))


# Axis of the answer frame each relation compares (see `geometry`: left_of, in_front_of, above).
RELATION_AXES = {"left_right": 0, "front_behind": 1, "above_below": 2}


def relation_margin(scene: SpatialScene, kind: str, a: SceneObjectEstimate, b: SceneObjectEstimate) -> float:
    """Separation of `a` and `b` along the axis of relation `kind` above which it is asserted: the near-tie margin
    plus both centres' uncertainty along that axis, so that the true separation exceeds the margin too."""
    axis = RELATION_AXES[kind]
    return scene.tolerances.relation_margin_m + float(a.centre_uncertainty[axis] + b.centre_uncertainty[axis])


def top_row_depth(cube: Cube, intrinsics, reading_spacing: float = 1.0) -> float:
    """Depth (metres) that one pixel row spans on the top of a cube seen from the camera (answer frame), times
    `reading_spacing`; infinite when the top is at or above the eye.

    A horizontal surface at distance `d` seen under elevation `e` spans `d / (f sin e)` per pixel row.
    """
    top = cube.center[2] + cube.size[2] / 2
    distance = float(np.hypot(*cube.center[:2]))
    elevation = np.arctan2(-top, distance)
    if elevation <= 0:
        return float("inf")
    return distance * reading_spacing / (min(intrinsics.fx, intrinsics.fy) * np.sin(elevation))


def _outline_depth(depth: np.ndarray, mask: np.ndarray, radius: int) -> np.ndarray:
    """Depth for the occlusion test: each pixel without a reading takes the nearest reading on its own side of the
    mask (object or not) within `radius` pixels. Sensors leave shadows without depth right along occluding edges,
    and sparse depth has gaps between readings; the object's own depth must not leak into what is in front of it.
    """
    valid = valid_depth(depth)
    if valid.all():
        return depth
    inside = fill_from_nearest(np.where(mask, depth, np.nan), radius)
    outside = fill_from_nearest(np.where(mask, np.nan, depth), radius)
    return np.where(mask, inside, outside)


def _cut_off(mask: np.ndarray, origin: tuple[int, int], image_shape: tuple[int, int]) -> bool:
    """Whether the image border cuts the object: its mask runs along the outermost two rows or columns for at
    least a tenth of its size (the square root of its area). A few stray mask pixels at the border (segmentation
    slop, box-derived masks picking up floor readings) do not count; a real cut runs along the whole object."""
    rows = np.arange(mask.shape[0])[:, None] + origin[0]
    cols = np.arange(mask.shape[1])[None, :] + origin[1]
    near_border = (rows < 2) | (cols < 2) | (rows >= image_shape[0] - 2) | (cols >= image_shape[1] - 2)
    return int((mask & near_border).sum()) >= max(2.0, 0.1 * np.sqrt(mask.sum()))


def _closed(mask: np.ndarray, radius: int) -> np.ndarray:
    """A sparse mask with the gaps between its readings closed (on its bounding box), plus the mask itself."""
    if not mask.any():
        return mask.copy()
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    r0, r1 = max(rows[0] - radius, 0), min(rows[-1] + radius + 1, mask.shape[0])
    c0, c1 = max(cols[0] - radius, 0), min(cols[-1] + radius + 1, mask.shape[1])
    out = mask.copy()
    structure = np.ones((2 * radius + 1, 2 * radius + 1), dtype=bool)
    crop = np.pad(mask[r0:r1, c0:c1], radius)
    closed = ndimage.binary_erosion(ndimage.binary_dilation(crop, structure), structure, border_value=1)
    out[r0:r1, c0:c1] |= closed[radius:-radius, radius:-radius]
    return out


# Width (pixels) of the band without depth that structured-light and time-of-flight sensors leave along occluding
# edges (the projector or emitter does not reach it).
_SHADOW_PX = 3

# Points of one object go through the 3D clustering at most this many at a time (speed; the voxel size adapts).
_MAX_CLUSTER_POINTS = 4000


def object_points(
    core: np.ndarray,
    origin: tuple[int, int],
    depth: np.ndarray,
    intrinsics,
    thresholds: Thresholds,
    rng: np.random.Generator,
) -> np.ndarray:
    """Camera-frame points of one object's cleaned pixels: its substantial 3D parts (`geometry.connected_parts`),
    subsampled to `max_points_per_object`.

    Args:
        core (`np.ndarray`): Crop of the usable object pixels (eroded, valid depth, no flying pixels).
        origin (`tuple[int, int]`): `(row, column)` of the crop's top-left pixel in the image.
        depth (`np.ndarray`): Full depth map.
        intrinsics (`Intrinsics`): Of the image.
        thresholds (`Thresholds`): Cleaning settings.
        rng (`np.random.Generator`): Subsampling.
    """
    vs, us = np.nonzero(core)
    vs, us = vs + origin[0], us + origin[1]
    if len(vs) > _MAX_CLUSTER_POINTS:
        keep = rng.choice(len(vs), size=_MAX_CLUSTER_POINTS, replace=False)
        vs, us = vs[keep], us[keep]
    points = unproject(us.astype(np.float64), vs.astype(np.float64), depth[vs, us].astype(np.float64), intrinsics)
    points = points[connected_parts(points, thresholds.part_gap_m, thresholds.min_part_share)]
    # No statistical outlier removal after this: it takes the sparse far end of a top seen at a grazing angle for
    # outliers and shortens the cube (measured: up to 0.1 m larger size errors), and far outliers are gone already.
    if len(points) > thresholds.max_points_per_object:
        points = points[rng.choice(len(points), size=thresholds.max_points_per_object, replace=False)]
    return points
