"""From a `Frame` (image, depth, intrinsics, masks) to the 3D description the questions are written from.

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057): objects become point clouds, cleaned
(mask erosion, depth-edge removal, statistical outliers, largest cluster), placed in a gravity-aligned frame, and
boxed by yaw-oriented cubes. Conventions are those of `dataset_builders.geometry`.

```
 depth + K --unproject--> points --(erode, edges, SOR, cluster)--> object clouds --fit--> cubes (answer frame)
                    +--RANSAC floor--> gravity frame ---------------------------^
```
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from .frames import Frame, SkipReason, SkipSample
from .geometry import (
    Cube,
    GravityFrame,
    depth_edges,
    erode_mask,
    estimate_gravity_frame,
    fit_cube,
    largest_component,
    occluded_boundary_fraction,
    remove_statistical_outliers,
    unproject,
    valid_depth,
)


@dataclass(frozen=True)
class Thresholds:
    """Every geometric threshold of the builder; recorded in each row's provenance and in the dataset card.

    Args:
        erosion_px (`int`): Mask erosion before unprojection.
        depth_edge_jump (`float`): Relative depth jump between neighbours that marks a depth edge.
        max_points_per_object (`int`): Object pixels are subsampled to this many points (speed; extents shrink by
            about one point spacing).
        outlier_neighbours (`int`): Neighbourhood of the statistical outlier removal.
        outlier_std_ratio (`float`): Deviations beyond which a point is an outlier.
        min_top_elevation_deg (`float`): Smallest angle under which the camera looks down onto an object's top for
            its cube's centre and size to be stated; flatter views hide the back of the object, and the cube would
            cover only its front (relations between centres are still asked).
        min_object_pixels (`int`): Smallest mask (after erosion) an object needs to be asked about.
        max_occluded_fraction (`float`): Largest share of a mask's outer outline that may be hidden (something in
            front, or another object touching it from above or the side).
        max_tilt_deg (`float`): Largest angle between the floor normal and the camera's up direction.
        relation_margin_m (`float`): Centre difference under which a relation is a near-tie and is not asked.
        depth_margin_m (`float`): Depth difference under which two marked points are a near-tie.
        depth_margin_fraction (`float`): Same, relative to the nearer point's depth (the larger margin applies).
        min_valid_depth_fraction (`float`): Smallest share of pixels with valid depth.
        min_image_side (`int`): Shorter image side below which the input is skipped.
        max_image_pixels (`int`): Pixel count above which the input is skipped before decoding.
    """

    erosion_px: int = 1
    depth_edge_jump: float = 0.05
    max_points_per_object: int = 1500
    outlier_neighbours: int = 8
    outlier_std_ratio: float = 4.0
    min_top_elevation_deg: float = 15.0
    min_object_pixels: int = 300
    max_occluded_fraction: float = 0.1
    max_tilt_deg: float = 45.0
    relation_margin_m: float = 0.15
    depth_margin_m: float = 0.05
    depth_margin_fraction: float = 0.03
    min_valid_depth_fraction: float = 0.3
    min_image_side: int = 32
    max_image_pixels: int = 4096 * 4096

    def to_dict(self) -> dict[str, float]:
        return {key: float(value) for key, value in asdict(self).items()}


@dataclass
class SceneObjectEstimate:
    """One detected object after geometry.

    Args:
        index (`int`): Position in `Frame.instances`.
        category (`str`): Category name.
        pixels (`int`): Mask size in pixels.
        mask (`np.ndarray`): `(H, W)` mask (markers are placed with `mask_anchor`).
        eligible (`bool`): Whole, unoccluded and large enough for relation questions.
        cube (`Cube`, *optional*): Answer-frame cube (eligible objects).
        points (`np.ndarray`, *optional*): Cleaned answer-frame points (eligible objects).
        measurable (`bool`): Eligible and seen from above steeply enough that the cube spans the whole object, so
            its centre and size may be stated (cube and distance questions).
    """

    index: int
    category: str
    pixels: int
    mask: np.ndarray
    eligible: bool
    cube: Cube | None = None
    points: np.ndarray | None = None
    measurable: bool = False


@dataclass
class SpatialScene:
    """Everything the question writer needs.

    Args:
        depth (`np.ndarray`): `(H, W)` depth, NaN where invalid.
        edges (`np.ndarray`): `(H, W)` depth edges and holes (pixel questions avoid them).
        frame (`GravityFrame`): Camera-to-answer rotation.
        objects (`list[SceneObjectEstimate]`): One per instance.
    """

    depth: np.ndarray
    edges: np.ndarray
    frame: GravityFrame
    objects: list[SceneObjectEstimate]


def mask_anchor(mask: np.ndarray) -> tuple[int, int]:
    """`(u, v)` of the mask pixel farthest from its outline, where a marker stays on the object."""
    rows, cols = np.nonzero(np.any(mask, axis=1))[0], np.nonzero(np.any(mask, axis=0))[0]
    crop = np.pad(mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], 1)
    v, u = np.unravel_index(np.argmax(ndimage.distance_transform_edt(crop)), crop.shape)
    return int(u - 1 + cols[0]), int(v - 1 + rows[0])


def analyse(frame: Frame, thresholds: Thresholds, rng: np.random.Generator) -> SpatialScene:
    """Gravity frame and per-object cubes of a frame that has depth, intrinsics and instances.

    Args:
        frame (`Frame`): Input with `depth`, `intrinsics` and `instances` set.
        thresholds (`Thresholds`): Geometric thresholds.
        rng (`np.random.Generator`): Randomness for subsampling and RANSAC (seeded per sample).

    Raises:
        SkipSample: `TOO_FEW_OBJECTS` when fewer than two objects can be asked about.
    """
    depth, k = frame.depth, frame.intrinsics
    edges = depth_edges(depth, thresholds.depth_edge_jump)
    usable = ~edges
    vs, us = np.nonzero(usable)
    pick = rng.choice(len(vs), size=min(len(vs), 2000), replace=False)
    scene_points = unproject(us[pick].astype(np.float64), vs[pick].astype(np.float64), depth[vs[pick], us[pick]], k)
    gravity = estimate_gravity_frame(scene_points, rng, max_tilt_deg=thresholds.max_tilt_deg)

    objects = []
    height, width = depth.shape
    owner = np.full(depth.shape, -1, dtype=np.int32)  # which instance each pixel belongs to
    for index, instance in enumerate(frame.instances or []):
        owner[instance.mask] = index
    pad = thresholds.erosion_px + 1
    for index, instance in enumerate(frame.instances or []):
        rows, cols = np.nonzero(instance.mask.any(axis=1))[0], np.nonzero(instance.mask.any(axis=0))[0]
        if len(rows) == 0:
            continue
        # Everything per object runs on its bounding box (grown by the erosion), not on the whole image.
        r0, r1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, height)
        c0, c1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, width)
        mask, crop_depth = instance.mask[r0:r1, c0:c1], depth[r0:r1, c0:c1]
        pixels = int((mask & valid_depth(crop_depth)).sum())
        if pixels == 0:
            continue
        core = erode_mask(mask, thresholds.erosion_px) & usable[r0:r1, c0:c1]
        cut_off = rows[0] < 2 or cols[0] < 2 or rows[-1] >= height - 2 or cols[-1] >= width - 2
        eligible = (
            int(core.sum()) >= thresholds.min_object_pixels
            and not cut_off
            and occluded_boundary_fraction(mask, crop_depth, (owner[r0:r1, c0:c1] >= 0) & ~mask)
            <= thresholds.max_occluded_fraction
        )
        estimate = SceneObjectEstimate(index, instance.category, pixels, instance.mask, eligible)
        if eligible:
            ovs, ous = np.nonzero(largest_component(core))
            keep = rng.choice(len(ovs), size=min(len(ovs), thresholds.max_points_per_object), replace=False)
            ovs, ous = ovs[keep] + r0, ous[keep] + c0
            points = unproject(ous.astype(np.float64), ovs.astype(np.float64), depth[ovs, ous].astype(np.float64), k)
            points = gravity.to_answer(
                remove_statistical_outliers(points, thresholds.outlier_neighbours, thresholds.outlier_std_ratio)
            )
            cube = fit_cube(points)
            top = cube.center[2] + cube.size[2] / 2
            elevation = np.degrees(np.arctan2(-top, np.hypot(*cube.center[:2])))
            estimate.points, estimate.cube = points, cube
            estimate.measurable = bool(elevation >= thresholds.min_top_elevation_deg)
        objects.append(estimate)
    if sum(o.eligible for o in objects) < 2:
        raise SkipSample(SkipReason.TOO_FEW_OBJECTS, f"{sum(o.eligible for o in objects)} usable objects")
    return SpatialScene(depth, edges, gravity, objects)
