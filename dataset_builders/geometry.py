"""Geometry shared by the dataset builders: unprojection, object point clouds, gravity frame, cubes, distances.

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057) turns dense 3D cues into question-answer text;
this module turns a depth map and instance masks into the 3D quantities the questions are written from.

Conventions (the one place they are stated; `tests/test_dataset_geometry.py` holds each of them):

- **Pixels** `(u, v)`: `u` is the column (to the right), `v` the row (downwards), origin at the top-left pixel of
  the original, upright image; integer coordinates are pixel centres.
- **Camera frame** (OpenCV): `x` right, `y` down, `z` forward along the optical axis; metres.
  `u = fx * x / z + cx`, `v = fy * y / z + cy`. **Depth** is `z` (distance along the optical axis, not along the
  ray), which is what RGB-D sensors and metric depth models report.
- **Answer frame** (every 3D number in the questions): gravity-aligned, origin at the camera centre, `Z` up
  (against gravity), `Y` forward (the optical axis projected onto the horizontal plane), `X = Y x Z` to the right;
  right-handed, metres. Found from a floor-like plane whose normal is within `max_tilt_deg` of the camera's up
  direction (`-y`); when no such plane is found the frame falls back to the camera axes (`X = x, Y = z, Z = -y`),
  the sample is flagged `gravity_aligned=False` and vertical questions are skipped.
- **Relations** compare cube centres in the answer frame and are `None` (a near-tie, never asked) when the centres
  differ by less than the margin: *A left of B* iff `A.X < B.X`; *A above B* iff `A.Z > B.Z`; *A in front of B*
  iff `A.Y < B.Y` (closer to the camera along the horizontal viewing direction).
- **Cube**: yaw-oriented box with centre `(X, Y, Z)`, size `(width, length, height)`, width along the cube's own
  x axis, height along `Z`; `yaw` rotates `X` onto the cube's x axis about `Z`, counter-clockwise seen from
  above, canonicalised to `[0, 90)` degrees (a box turned by 90 degrees is the same box with width and length
  swapped).
- **Distances**: *centre distance* is the Euclidean distance between cube centres; *closest-point distance* is
  the smallest distance between the two objects' point clouds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError, cKDTree


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of the original image, in pixels.

    Args:
        fx (`float`): Focal length along `u`.
        fy (`float`): Focal length along `v`.
        cx (`float`): Principal point column.
        cy (`float`): Principal point row.
    """

    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_fov(cls, width: int, height: int, horizontal_fov_deg: float) -> Intrinsics:
        """Square pixels, principal point at the image centre, focal length from the horizontal field of view."""
        focal = 0.5 * width / np.tan(np.radians(horizontal_fov_deg) / 2)
        return cls(focal, focal, (width - 1) / 2, (height - 1) / 2)


def valid_depth(depth: np.ndarray) -> np.ndarray:
    """Pixels with usable depth: finite and strictly positive (sensors write 0 or NaN where they have no reading)."""
    return np.isfinite(depth) & (depth > 0)


def unproject(us: np.ndarray, vs: np.ndarray, depths: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Camera-frame points `(N, 3)` of pixels `(us, vs)` with depths `depths` (inverse of `project`)."""
    x = (us - intrinsics.cx) / intrinsics.fx * depths
    y = (vs - intrinsics.cy) / intrinsics.fy * depths
    return np.stack([x, y, depths], axis=-1)


def project(points: np.ndarray, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel coordinates `(u, v)` and depth of camera-frame points `(N, 3)`."""
    z = points[:, 2]
    return intrinsics.fx * points[:, 0] / z + intrinsics.cx, intrinsics.fy * points[:, 1] / z + intrinsics.cy, z


def mask_points(mask: np.ndarray, depth: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Camera-frame points of the pixels of `mask` that have valid depth."""
    vs, us = np.nonzero(mask & valid_depth(depth))
    return unproject(us.astype(np.float64), vs.astype(np.float64), depth[vs, us].astype(np.float64), intrinsics)


def erode_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Erode a mask by `pixels`, working on its bounding box only (a full-image erosion per object is the slow part).

    Mask borders mix object and background depth (anti-aliasing, sensor flying pixels, segmentation slop), so
    their pixels are dropped before the object's point cloud is built.
    """
    if pixels <= 0 or not mask.any():
        return mask.copy()
    rows, cols = np.nonzero(np.any(mask, axis=1))[0], np.nonzero(np.any(mask, axis=0))[0]
    r0, r1 = max(rows[0] - pixels, 0), min(rows[-1] + pixels + 1, mask.shape[0])
    c0, c1 = max(cols[0] - pixels, 0), min(cols[-1] + pixels + 1, mask.shape[1])
    out = np.zeros_like(mask)
    # border_value=0: pixels on the image edge are eroded too, their neighbours outside the image are unknown.
    out[r0:r1, c0:c1] = ndimage.binary_erosion(mask[r0:r1, c0:c1], iterations=pixels, border_value=0)
    return out


def depth_edges(depth: np.ndarray, relative_jump: float) -> np.ndarray:
    """Pixels whose depth differs from a 4-neighbour by more than `relative_jump` times their own depth.

    Invalid pixels count as edges, so a point next to a hole in the depth map is never used.
    """
    d = np.where(valid_depth(depth), depth, np.nan).astype(np.float64)
    edges = ~np.isfinite(d)
    # NaN comparisons are False, so differences next to holes are handled by `edges` above and the dilation below.
    with np.errstate(invalid="ignore"):
        jump_v = np.abs(np.diff(d, axis=0)) > relative_jump * np.fmin(d[1:], d[:-1])
        jump_u = np.abs(np.diff(d, axis=1)) > relative_jump * np.fmin(d[:, 1:], d[:, :-1])
    edges[1:] |= jump_v
    edges[:-1] |= jump_v
    edges[:, 1:] |= jump_u
    edges[:, :-1] |= jump_u
    holes = ~np.isfinite(d)
    edges |= ndimage.binary_dilation(holes) if holes.any() else holes
    return edges


def remove_statistical_outliers(points: np.ndarray, neighbours: int = 8, std_ratio: float = 2.0) -> np.ndarray:
    """Keep points whose mean distance to their `neighbours` nearest neighbours is within `std_ratio` deviations.

    Args:
        points (`np.ndarray`): `(N, 3)` points.
        neighbours (`int`): Neighbourhood size.
        std_ratio (`float`): Points farther than `mean + std_ratio * std` of the mean neighbour distance are dropped.
    """
    if len(points) <= neighbours:
        return points
    distances, _ = cKDTree(points).query(points, k=neighbours + 1)
    mean = distances[:, 1:].mean(axis=1)
    return points[mean <= mean.mean() + std_ratio * mean.std()]


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected region of a mask (computed on its bounding box).

    Run after depth edges are cut out of the mask, this is largest-cluster selection on the pixel grid: a mask
    that leaks onto the wall behind an object is split from it by the depth edge between them. Unlike a fixed 3D
    link radius it does not break surfaces seen at grazing angles, whose points are sparse in 3D.
    """
    if not mask.any():
        return mask.copy()
    rows, cols = np.nonzero(np.any(mask, axis=1))[0], np.nonzero(np.any(mask, axis=0))[0]
    crop = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    labels, count = ndimage.label(crop)
    out = np.zeros_like(mask)
    if count:
        largest = np.bincount(labels.ravel())[1:].argmax() + 1
        out[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = labels == largest
    return out


@dataclass(frozen=True)
class GravityFrame:
    """Rotation from the camera frame to the answer frame (see the module docstring).

    Args:
        rotation (`np.ndarray`): `(3, 3)`; rows are the answer axes `X, Y, Z` written in camera coordinates.
        aligned (`bool`): Whether `Z` comes from a floor-like plane (`False`: camera-axes fallback).
        tilt_deg (`float`): Angle between the answer frame's `Z` and the camera's up direction `-y`.
    """

    rotation: np.ndarray
    aligned: bool
    tilt_deg: float

    def to_answer(self, points_camera: np.ndarray) -> np.ndarray:
        """Answer-frame coordinates of camera-frame points `(N, 3)`."""
        return points_camera @ self.rotation.T

    @classmethod
    def from_up(cls, up_camera: np.ndarray, aligned: bool = True) -> GravityFrame:
        """Answer frame whose `Z` is `up_camera` (a direction in camera coordinates)."""
        z = up_camera / np.linalg.norm(up_camera)
        forward = np.array([0.0, 0.0, 1.0]) - z[2] * z
        y = forward / np.linalg.norm(forward)
        x = np.cross(y, z)
        tilt = float(np.degrees(np.arccos(np.clip(-z[1], -1.0, 1.0))))
        return cls(np.stack([x, y, z]), aligned, tilt)


CAMERA_AXES_FRAME = GravityFrame(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]), False, 0.0)


def estimate_gravity_frame(
    points_camera: np.ndarray,
    rng: np.random.Generator,
    max_tilt_deg: float = 45.0,
    inlier_distance: float = 0.03,
    min_inlier_fraction: float = 0.05,
    iterations: int = 100,
) -> GravityFrame:
    """Gravity-aligned answer frame from the largest floor-like plane (RANSAC), or the flagged camera-axes frame.

    A plane is a floor candidate when its upward normal is within `max_tilt_deg` of the camera's up direction and
    the camera is above it; walls and ceilings are therefore never taken for the floor. Table tops pass too, and
    are as good: only the plane's normal is used.

    Args:
        points_camera (`np.ndarray`): `(N, 3)` scene points in the camera frame (a few thousand are plenty).
        rng (`np.random.Generator`): Source of the RANSAC samples, so results are reproducible.
        max_tilt_deg (`float`): Largest accepted angle between the plane normal and the camera's up direction.
        inlier_distance (`float`): Point-to-plane distance, in metres, under which a point supports a plane.
        min_inlier_fraction (`float`): Smallest share of the points a plane needs to be accepted.
        iterations (`int`): RANSAC iterations.
    """
    if len(points_camera) < 3:
        return CAMERA_AXES_FRAME
    camera_up = np.array([0.0, -1.0, 0.0])
    cos_max = np.cos(np.radians(max_tilt_deg))
    triplets = rng.integers(0, len(points_camera), size=(iterations, 3))
    a, b, c = points_camera[triplets[:, 0]], points_camera[triplets[:, 1]], points_camera[triplets[:, 2]]
    normals = np.cross(b - a, c - a)
    norms = np.linalg.norm(normals, axis=1)
    keep = norms > 1e-9
    normals, a = normals[keep] / norms[keep, None], a[keep]
    normals *= np.where(normals @ camera_up < 0, -1.0, 1.0)[:, None]
    offsets = -np.einsum("ij,ij->i", normals, a)
    # Floor-like: roughly up, and the camera (origin) above it, i.e. positive signed distance `offset`.
    candidates = (normals @ camera_up >= cos_max) & (offsets > 0)
    if not candidates.any():
        return CAMERA_AXES_FRAME
    normals, offsets = normals[candidates], offsets[candidates]
    support = (np.abs(points_camera @ normals.T + offsets) < inlier_distance).sum(axis=0)
    best = int(support.argmax())
    if support[best] < min_inlier_fraction * len(points_camera):
        return CAMERA_AXES_FRAME
    inliers = points_camera[np.abs(points_camera @ normals[best] + offsets[best]) < inlier_distance]
    # Least-squares refinement: the normal is the direction of least variance of the inliers.
    normal = np.linalg.svd(inliers - inliers.mean(axis=0), full_matrices=False)[2][-1]
    normal *= 1.0 if normal @ camera_up >= 0 else -1.0
    if normal @ camera_up < cos_max:
        return CAMERA_AXES_FRAME
    return GravityFrame.from_up(normal)


@dataclass(frozen=True)
class Cube:
    """Yaw-oriented 3D bounding cube in the answer frame (see the module docstring).

    Args:
        center (`np.ndarray`): `(3,)` centre `(X, Y, Z)` in metres.
        size (`np.ndarray`): `(3,)` `(width, length, height)` in metres.
        yaw (`float`): Rotation about `Z` in radians, in `[0, pi/2)`.
    """

    center: np.ndarray
    size: np.ndarray
    yaw: float

    def corners(self) -> np.ndarray:
        """The 8 corners `(8, 3)` in the answer frame."""
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
        local = signs * self.size / 2
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return local @ rotation.T + self.center


def canonical_yaw(yaw: float, width: float, length: float) -> tuple[float, float, float]:
    """Fold a yaw into `[0, pi/2)`, swapping width and length for every quarter turn removed."""
    quarter_turns = int(np.floor(yaw / (np.pi / 2)))
    yaw -= quarter_turns * np.pi / 2
    if quarter_turns % 2:
        width, length = length, width
    return yaw, width, length


def fit_cube(points: np.ndarray) -> Cube:
    """Smallest-footprint yaw-oriented cube around answer-frame points `(N, 3)`.

    The footprint is the minimum-area rectangle of the points' horizontal projection (one of its sides lies on an
    edge of the convex hull); the height spans the points' vertical extent.
    """
    z_min, z_max = points[:, 2].min(), points[:, 2].max()
    xy = points[:, :2]
    try:
        hull = xy[ConvexHull(xy).vertices]
    except QhullError:  # Collinear or repeated footprints (a thin sliver seen edge-on): no 2D hull exists.
        hull = xy
    edges = np.roll(hull, -1, axis=0) - hull
    angles = np.unique(np.mod(np.arctan2(edges[:, 1], edges[:, 0]), np.pi / 2))
    cos, sin = np.cos(angles)[:, None], np.sin(angles)[:, None]
    # Hull coordinates along each candidate rectangle's axes: (angles, hull points).
    along_x = hull[:, 0] * cos + hull[:, 1] * sin
    along_y = -hull[:, 0] * sin + hull[:, 1] * cos
    lows = np.stack([along_x.min(axis=1), along_y.min(axis=1)], axis=1)
    highs = np.stack([along_x.max(axis=1), along_y.max(axis=1)], axis=1)
    best = int(np.prod(highs - lows, axis=1).argmin())
    angle, low, high = angles[best], lows[best], highs[best]
    c, s = np.cos(angle), np.sin(angle)
    center_xy = np.array([[c, -s], [s, c]]) @ ((low + high) / 2)
    yaw, width, length = canonical_yaw(float(angle), *(high - low))
    return Cube(np.array([*center_xy, (z_min + z_max) / 2]), np.array([width, length, z_max - z_min]), yaw)


def centre_distance(a: Cube, b: Cube) -> float:
    """Euclidean distance between cube centres, in metres."""
    return float(np.linalg.norm(a.center - b.center))


def closest_point_distance(points_a: np.ndarray, points_b: np.ndarray) -> float:
    """Smallest distance between two point clouds, in metres."""
    return float(cKDTree(points_b).query(points_a, k=1)[0].min())


def _relation(a: float, b: float, margin: float) -> bool | None:
    if abs(a - b) < margin:
        return None
    return bool(a < b)


def left_of(a: Cube, b: Cube, margin: float) -> bool | None:
    """Whether `a` is left of `b` (smaller `X`); `None` for a near-tie."""
    return _relation(a.center[0], b.center[0], margin)


def in_front_of(a: Cube, b: Cube, margin: float) -> bool | None:
    """Whether `a` is in front of `b` (smaller `Y`, closer to the camera); `None` for a near-tie."""
    return _relation(a.center[1], b.center[1], margin)


def above(a: Cube, b: Cube, margin: float) -> bool | None:
    """Whether `a` is above `b` (larger `Z`); `None` for a near-tie."""
    return _relation(b.center[2], a.center[2], margin)


def occluded_boundary_fraction(
    mask: np.ndarray, depth: np.ndarray, others: np.ndarray, relative_gap: float = 0.05
) -> float:
    """Share of a mask's outer outline that something may hide: a pixel clearly in front, or another object touching.

    The cube of a partly hidden object covers only its visible part, so such objects are not asked about. A
    touching object at about the same depth (a monitor standing on the back edge of a cabinet) hides what is
    behind it without a depth jump, so it counts too, except right below the outline, where it is what the object
    stands on. Holes in the mask (a lamp in the middle of a table top) do not count: the object's extent is still
    seen around them.

    Args:
        mask (`np.ndarray`): `(H, W)` mask of the object (a crop works the same).
        depth (`np.ndarray`): `(H, W)` depth, NaN where invalid.
        others (`np.ndarray`): `(H, W)` mask of every other object.
        relative_gap (`float`): Depth difference, relative to the object's depth, that counts as "clearly".
    """
    # Pad by one pixel: outside the image there is nothing in front.
    filled = np.pad(ndimage.binary_fill_holes(mask), 1)
    d = np.pad(np.where(valid_depth(depth), depth, np.inf), 1, constant_values=np.inf)
    other = np.pad(others, 1)
    outline = filled & ~ndimage.binary_erosion(filled)
    if not outline.any():
        return 0.0
    hidden = np.zeros_like(filled)
    # (axis, shift): np.roll(x, shift, axis)[v, u] is x at the neighbour (v - shift) along that axis.
    for axis, shift in ((0, 1), (0, -1), (1, 1), (1, -1)):
        neighbour_depth = np.roll(d, shift, axis=axis)
        in_front = neighbour_depth < d * (1 - relative_gap)
        touching = np.roll(other, shift, axis=axis) & (neighbour_depth < d * (1 + relative_gap))
        if (axis, shift) == (0, -1):  # neighbour below: a support, not an occluder
            touching[:] = False
        hidden |= outline & ~np.roll(filled, shift, axis=axis) & (in_front | touching)
    return float(hidden.sum() / outline.sum())
