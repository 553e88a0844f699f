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
  right-handed, metres. `Z` is the dataset's own up vector when the source has one (SUN RGB-D's Rtilt, ScanNet's
  axis alignment, the annotated layout's `up_camera`, a rendered pose); otherwise it is estimated from the
  horizontal surfaces below the camera (`estimate_gravity`) with a measured confidence. When the estimate is not
  trustworthy the frame falls back to the camera axes (`X = x, Y = z, Z = -y`), the sample is flagged
  `gravity_aligned=False`, and only questions that need no gravity are asked (no above/below, no cube).
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
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
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


def register_depth(
    depth: np.ndarray,
    depth_intrinsics: Intrinsics,
    color_intrinsics: Intrinsics,
    color_size: tuple[int, int],
    depth_to_color: np.ndarray | None = None,
) -> np.ndarray:
    """Depth on the colour image's pixel grid, from a depth camera with other intrinsics, size or pose.

    Sensors such as ScanNet's record depth at 640x480 and colour at 1296x968 with separate intrinsics. When the two
    cameras share their optical centre and orientation (`depth_to_color` is `None` or the identity, as in ScanNet's
    exports), each colour pixel takes the reading of the depth pixel its ray passes through (nearest pixel centre):
    the depth along the optical axis is the same for both cameras, so every value is a sensor reading. Otherwise
    the depth points are moved into the colour camera and splatted with a z-buffer over their pixel footprint.

    Args:
        depth (`np.ndarray`): `(h, w)` depth in metres, NaN or 0 where invalid.
        depth_intrinsics (`Intrinsics`): Of the depth image.
        color_intrinsics (`Intrinsics`): Of the colour image.
        color_size (`tuple[int, int]`): `(width, height)` of the colour image.
        depth_to_color (`np.ndarray`, *optional*): `(4, 4)` rigid transform from depth to colour camera coordinates.

    Returns:
        `np.ndarray`: `(height, width)` float32 depth of the colour pixels, NaN where there is no reading.
    """
    width, height = color_size
    d = np.where(valid_depth(depth), depth, np.nan).astype(np.float32)
    if depth_to_color is None or np.allclose(depth_to_color, np.eye(4), atol=1e-9):
        us = np.arange(width, dtype=np.float64)
        vs = np.arange(height, dtype=np.float64)
        cols = np.rint((us - color_intrinsics.cx) / color_intrinsics.fx * depth_intrinsics.fx + depth_intrinsics.cx)
        rows = np.rint((vs - color_intrinsics.cy) / color_intrinsics.fy * depth_intrinsics.fy + depth_intrinsics.cy)
        inside_u = (cols >= 0) & (cols < d.shape[1])
        inside_v = (rows >= 0) & (rows < d.shape[0])
        out = np.full((height, width), np.nan, dtype=np.float32)
        out[np.ix_(inside_v, inside_u)] = d[np.ix_(rows[inside_v].astype(int), cols[inside_u].astype(int))]
        return out
    vs, us = np.nonzero(np.isfinite(d))
    points = unproject(us.astype(np.float64), vs.astype(np.float64), d[vs, us].astype(np.float64), depth_intrinsics)
    points = points @ depth_to_color[:3, :3].T + depth_to_color[:3, 3]
    points = points[points[:, 2] > 1e-3]
    u, v, z = project(points, color_intrinsics)
    # A depth pixel covers about this many colour pixels along each axis.
    footprint = int(np.ceil(max(color_intrinsics.fx / depth_intrinsics.fx, color_intrinsics.fy / depth_intrinsics.fy)))
    buffer = np.full(height * width, np.inf)
    for dv in range(footprint):
        for du in range(footprint):
            col = np.floor(u - (footprint - 1) / 2 + du + 0.5).astype(np.int64)
            row = np.floor(v - (footprint - 1) / 2 + dv + 0.5).astype(np.int64)
            inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
            np.minimum.at(buffer, row[inside] * width + col[inside], z[inside])
    buffer = buffer.reshape(height, width)
    return np.where(np.isfinite(buffer), buffer, np.nan).astype(np.float32)


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


def valid_neighbour_share(depth: np.ndarray) -> float:
    """Mean share of valid pixels among the 8 neighbours of valid pixels: about 0.9 for sensor depth with holes,
    the sampling rate for a point cloud subsampled onto the pixel grid (0.13 for SUN RGB-D's 50 000 points)."""
    valid = valid_depth(depth)
    if not valid.any():
        return 0.0
    if valid.mean() > 0.75:
        return 1.0  # dense: nothing here depends on the exact figure above SPARSE_NEIGHBOUR_SHARE
    neighbours = ndimage.convolve(
        valid.astype(np.float32), np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], np.float32) / 8
    )
    return float(neighbours[valid].mean())


# Depth maps whose valid pixels have fewer valid neighbours than this are sparse (subsampled point clouds, LiDAR):
# their holes are sampling, not sensor dropout, so pixel-grid operations (erosion, 4-neighbour edges, connected
# components) are replaced by their windowed or 3D counterparts.
SPARSE_NEIGHBOUR_SHARE = 0.5


def sparse_window_px(neighbour_share: float) -> int:
    """Window radius (pixels) that holds a few valid neighbours at this sampling rate: 1 for dense depth."""
    if neighbour_share >= SPARSE_NEIGHBOUR_SHARE:
        return 1
    # A (2r+1)^2 window holds about 4 readings at sampling rate s when r = sqrt(1 / s).
    return int(min(4, max(2, np.ceil(np.sqrt(1.0 / max(neighbour_share, 1e-3))))))


def discontinuities(depth: np.ndarray, relative_jump: float, radius: int = 1) -> np.ndarray:
    """Valid pixels whose depth differs from a valid pixel within `radius` (Chebyshev) by more than
    `relative_jump * distance_px` times the nearer depth: both sides of every depth jump, where sensors write
    flying pixels (mixtures of foreground and background). Unlike `depth_edges`, holes are not edges, so objects on
    holey or sparse depth keep their points.
    """
    d = np.where(valid_depth(depth), depth, np.nan).astype(np.float32)
    height, width = d.shape
    flagged = np.zeros(d.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        # Each unordered pair of pixels once: offsets (dv, du) with du > 0, or du == 0 and dv > 0.
        for dv in range(-radius, radius + 1):
            for du in range(0, radius + 1):
                if du == 0 and dv <= 0:
                    continue
                rows = slice(max(0, -dv), height - max(0, dv))
                cols = slice(0, width - du)
                rows_other = slice(max(0, dv), height - max(0, -dv))
                cols_other = slice(du, width)
                a, b = d[rows, cols], d[rows_other, cols_other]
                jump = np.abs(a - b) > (relative_jump * max(abs(du), abs(dv))) * np.fmin(a, b)
                flagged[rows, cols] |= jump
                flagged[rows_other, cols_other] |= jump
    return flagged


def fill_from_nearest(depth: np.ndarray, radius: int) -> np.ndarray:
    """Depth where every invalid pixel within `radius` of a reading takes the nearest reading (NaN elsewhere).

    Used only for the 2D tests on sparse depth (what is in front of an object's outline), never for an answer.
    """
    valid = valid_depth(depth)
    if radius <= 0 or valid.all() or not valid.any():
        return np.where(valid, depth, np.nan)
    distance, (rows, cols) = ndimage.distance_transform_edt(~valid, return_indices=True)
    filled = depth[rows, cols]
    return np.where(distance <= radius * np.sqrt(2), filled, np.nan)


def connected_parts(
    points: np.ndarray, part_gap_m: float, min_part_share: float = 0.1, max_voxels: int = 4000
) -> np.ndarray:
    """Which points `(N, 3)` belong to the object: its largest 3D part and every part holding `min_part_share`.

    Parts are single-linkage clusters at `part_gap_m` (on voxels of half of it, coarser when there would be more
    than `max_voxels`). An object that holes, thin occluders, grazing views or its own occlusion cut into
    pieces on the pixel grid stays whole (a bed and its headboard behind the pillows are two large parts), while
    small clusters away from it (stray readings, slivers of background a mask leaked onto) are dropped.

    Args:
        points (`np.ndarray`): `(N, 3)` points in metres.
        part_gap_m (`float`): Largest 3D gap within one part.
        min_part_share (`float`): Share of the points from which a part is kept wherever it lies.
        max_voxels (`int`): Voxel budget (speed).

    Returns:
        `np.ndarray`: Boolean `(N,)`.
    """
    if len(points) < 3:
        return np.ones(len(points), dtype=bool)
    # Voxels of half the gap: linkage is decided to within a voxel, which is as sharp as the gap itself is.
    voxel = part_gap_m / 2
    lowest = points.min(axis=0)
    while True:
        keys = np.floor((points - lowest) / voxel).astype(np.int64)
        # One integer per voxel (21 bits per axis).
        flat = (keys[:, 0] << 42) | (keys[:, 1] << 21) | keys[:, 2]
        unique, inverse = np.unique(flat, return_inverse=True)
        if len(unique) <= max_voxels:
            break
        voxel *= 1.5
    counts = np.bincount(inverse, minlength=len(unique))
    centres = np.zeros((len(unique), 3))
    np.add.at(centres, inverse, points)
    centres /= counts[:, None]
    pairs = cKDTree(centres).query_pairs(max(part_gap_m, 1.8 * voxel), output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(unique), len(unique)))
    count, labels = connected_components(graph, directed=False)
    weights = np.bincount(labels, weights=counts, minlength=count)
    kept = weights >= min_part_share * len(points)
    kept[int(weights.argmax())] = True
    return kept[labels][inverse]


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
        if np.linalg.norm(forward) < 1e-6:
            # Looking straight down (or up): the optical axis has no horizontal part; forward is the image's up.
            forward = np.array([0.0, -1.0, 0.0]) - z[1] * z
        y = forward / np.linalg.norm(forward)
        x = np.cross(y, z)
        tilt = float(np.degrees(np.arccos(np.clip(-z[1], -1.0, 1.0))))
        return cls(np.stack([x, y, z]), aligned, tilt)


CAMERA_AXES_FRAME = GravityFrame(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]), False, 0.0)


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two directions, in degrees."""
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def surface_normals(points: np.ndarray, neighbours: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals and surface variation of points `(N, 3)` from their `neighbours` nearest neighbours (PCA).

    Works the same on dense and on sparse depth, since it needs only the 3D points. The surface variation
    `l0 / (l0 + l1 + l2)` (eigenvalues of the neighbourhood covariance, smallest first) is 0 on a plane and 1/3 for
    isotropic clutter.
    """
    k = min(neighbours, len(points))
    _, index = cKDTree(points).query(points, k=k)
    local = points[index] - points[index].mean(axis=1, keepdims=True)  # (N, k, 3)
    covariance = np.einsum("nki,nkj->nij", local, local) / k
    values, vectors = np.linalg.eigh(covariance)  # ascending eigenvalues
    variation = values[:, 0] / np.maximum(values.sum(axis=1), 1e-12)
    return vectors[:, :, 0], variation


@dataclass(frozen=True)
class GravityEstimate:
    """Answer frame of one image with how it was obtained and how far it can be trusted.

    Args:
        frame (`GravityFrame`): The frame; `frame.aligned` is the decision (camera axes when not trusted).
        source (`str`): `given:<origin>` (the dataset's up vector), `estimated` (trusted estimate), or `camera_axes`.
        confidence (`float`, *optional*): Share of resampled estimates within `agreement_deg` of the estimate (None
            when the up vector is given).
        spread_deg (`float`, *optional*): Largest angle between a resampled estimate and the estimate.
        inconsistency_deg (`float`, *optional*): Angle between the estimate and the up direction that the vertical
            surfaces (walls, furniture sides) imply, when they imply one.
        support (`float`): Share of the points on the horizontal layers that define the estimate.
        estimated_up (`np.ndarray`, *optional*): The estimate in camera coordinates, also when it was not trusted.
        reason (`str`): Why the estimate was not trusted (empty when it was, or when the up vector is given).
    """

    frame: GravityFrame
    source: str
    confidence: float | None = None
    spread_deg: float | None = None
    inconsistency_deg: float | None = None
    support: float = 0.0
    estimated_up: np.ndarray | None = None
    reason: str = ""

    @classmethod
    def given(cls, up_camera: np.ndarray, origin: str) -> GravityEstimate:
        """The dataset's own up vector (`origin` says where it came from)."""
        return cls(GravityFrame.from_up(np.asarray(up_camera, dtype=np.float64)), f"given:{origin}")


# Kinect-class sensors: depth noise grows with the square of depth (about 1.2 mm + 1.9 mm per m^2 beyond 0.4 m,
# Nguyen, Izadi & Lovell 2012); a point belongs to a horizontal layer within 2.5 noise deviations, and never less
# than 1.5 cm (rendered and model depth have no such noise, but surfaces are not perfectly flat).
def _layer_tolerance(depth: np.ndarray) -> np.ndarray:
    return np.maximum(0.015, 2.5 * (0.0012 + 0.0019 * np.maximum(depth - 0.4, 0.0) ** 2))


def _horizontal_layers(
    points: np.ndarray,
    normals: np.ndarray,
    candidates: np.ndarray,
    up: np.ndarray,
    min_layer_share: float,
    below_camera_m: float,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Refine `up` by a shared-normal plane fit to every horizontal layer below the camera; `(up, inliers)`."""
    tolerance = _layer_tolerance(points[:, 2])
    inliers = None
    for _ in range(4):
        heights = points @ up
        # Layers: 2 cm height bins of the points whose normal agrees with `up`, below the camera.
        flat = candidates & (normals @ up > np.cos(np.radians(10.0))) & (heights < -below_camera_m)
        if flat.sum() < 30:
            return None
        low, high = heights[flat].min(), heights[flat].max()
        counts, edges = np.histogram(
            heights[flat], bins=max(1, int(np.ceil((high - low) / 0.02))), range=(low, high + 1e-9)
        )
        smoothed = np.convolve(counts, [1, 1, 1], mode="same")
        peaks = [
            i
            for i in range(len(counts))
            if smoothed[i] >= min_layer_share * flat.sum() and smoothed[i] == smoothed[max(i - 3, 0) : i + 4].max()
        ]
        if not peaks:
            return None
        centres = [(edges[i] + edges[i + 1]) / 2 for i in peaks]
        # Each point joins its nearest layer; points whose normal disagrees strongly are clutter on the layer.
        offset = np.min(np.abs(heights[:, None] - np.array(centres)[None]), axis=1)
        layer = np.argmin(np.abs(heights[:, None] - np.array(centres)[None]), axis=1)
        inliers = (offset < tolerance) & (normals @ up > np.cos(np.radians(25.0))) & (heights < -below_camera_m)
        if inliers.sum() < 30:
            return None
        # Shared normal: the direction of least variance of the points about their own layer's centroid.
        centred = points[inliers].copy()
        for index in np.unique(layer[inliers]):
            members = layer[inliers] == index
            centred[members] -= centred[members].mean(axis=0)
        refined = np.linalg.svd(centred, full_matrices=False)[2][-1]
        refined *= 1.0 if refined @ up >= 0 else -1.0
        converged = angle_deg(refined, up) < 0.05
        up = refined
        if converged:
            break
    return up, inliers


def _estimate_up_once(
    points: np.ndarray,
    normals: np.ndarray,
    variation: np.ndarray,
    rng: np.random.Generator,
    max_tilt_deg: float,
    min_layer_share: float,
    below_camera_m: float,
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Best up direction over the modes of the horizontal-looking normals: `(up, inliers, ambiguity)`.

    `ambiguity` is the support of the best competing direction (more than 5 degrees away) over the winner's.
    """
    camera_up = np.array([0.0, -1.0, 0.0])
    candidates = (variation < 0.02) & (normals @ camera_up >= np.cos(np.radians(max_tilt_deg)))
    if candidates.sum() < 30:
        return None
    candidate_normals = normals[candidates]
    seeds = candidate_normals[rng.choice(len(candidate_normals), size=min(256, len(candidate_normals)), replace=False)]
    # Mode seeking on the sphere: how many candidate normals lie within 6 degrees of each seed.
    counts = (seeds @ candidate_normals.T > np.cos(np.radians(6.0))).sum(axis=1)
    modes: list[np.ndarray] = []
    for index in np.argsort(-counts):
        if len(modes) == 3:
            break
        if all(angle_deg(seeds[index], m) > 8.0 for m in modes):
            near = candidate_normals[candidate_normals @ seeds[index] > np.cos(np.radians(6.0))]
            mean = near.mean(axis=0)
            modes.append(mean / np.linalg.norm(mean))
    results = []
    for mode in modes:
        refined = _horizontal_layers(points, normals, candidates, mode, min_layer_share, below_camera_m)
        if refined is not None and refined[0] @ camera_up >= np.cos(np.radians(max_tilt_deg)):
            results.append(refined)
    if not results:
        return None
    results.sort(key=lambda r: -int(r[1].sum()))
    best_up, best_inliers = results[0]
    rivals = [int(r[1].sum()) for r in results[1:] if angle_deg(r[0], best_up) > 5.0]
    return best_up, best_inliers, (max(rivals) / int(best_inliers.sum())) if rivals else 0.0


def _vertical_inconsistency(normals: np.ndarray, variation: np.ndarray, up: np.ndarray) -> float | None:
    """Largest angle by which a well-supported vertical surface direction (walls, cabinet fronts) leans out of the
    plane perpendicular to `up`; `None` when fewer than 200 points look vertical.

    Wall directions are the modes of the near-horizontal normals (within 5 degrees), refined by the mean of their
    members, so the mixed normals along box edges do not bias them. A wrong up direction, tilted by an angle towards
    a wall, makes that wall lean by the same angle.
    """
    vertical = (variation < 0.02) & (np.abs(normals @ up) < np.sin(np.radians(25.0)))
    if vertical.sum() < 200:
        return None
    wall_normals = normals[vertical]
    cos_window = np.cos(np.radians(5.0))
    seeds = wall_normals[:: max(1, len(wall_normals) // 128)]
    counts = (np.abs(seeds @ wall_normals.T) > cos_window).sum(axis=1)
    worst, directions = 0.0, []
    for index in np.argsort(-counts):
        if counts[index] < max(100, 0.2 * len(wall_normals)) or len(directions) == 4:
            break
        if any(abs(float(seeds[index] @ d)) > np.cos(np.radians(15.0)) for d in directions):
            continue
        members = wall_normals[np.abs(wall_normals @ seeds[index]) > cos_window]
        members = members * np.sign(members @ seeds[index])[:, None]
        direction = members.mean(axis=0) / np.linalg.norm(members.mean(axis=0))
        directions.append(direction)
        worst = max(worst, float(np.degrees(np.arcsin(min(1.0, abs(float(direction @ up)))))))
    return worst if directions else None


def estimate_gravity(
    points_camera: np.ndarray,
    rng: np.random.Generator,
    max_tilt_deg: float = 45.0,
    agreement_deg: float = 2.0,
    min_confidence: float = 0.9,
    max_inconsistency_deg: float = 5.0,
    max_ambiguity: float = 0.5,
    min_support: float = 0.03,
    resamples: int = 8,
    below_camera_m: float = 0.2,
) -> GravityEstimate:
    """Up direction from the horizontal surfaces below the camera (floor, tables, beds), with a measured confidence.

    Surface normals (PCA of each point's neighbours) that look horizontal are clustered on the sphere; each mode is
    refined by one plane fit with a shared normal over every horizontal layer below the camera (the floor and the
    furniture tops at their own heights), and the mode with the most layer points wins. The estimate is trusted
    only when (1) it lies within `max_tilt_deg` of the camera's up direction `-y`, (2) the layers hold at least
    `min_support` of the points, (3) no direction more than 5 degrees away has more than `max_ambiguity` of its
    support, (4) at least `min_confidence` of `resamples` estimates from random 60 % subsets of the points lie
    within `agreement_deg` of it (the measured confidence), and (5) no well-supported vertical surface leans by more
    than `max_inconsistency_deg` against it. Otherwise the flagged camera-axes frame is returned, with the reason.

    Measured (`benchmarks/bench_geometry_real.py --estimate-gravity`): within 1.6 degrees of SUN RGB-D's Rtilt on its
    dense and sparse frames (Rtilt itself levels the floor to about 1.5 degrees), within 0.3 degrees on rendered
    scenes with Kinect-like noise or 13 % sparse depth and cameras rolled up to 25 degrees.

    Args:
        points_camera (`np.ndarray`): `(N, 3)` scene points in the camera frame, a few thousand, without flying
            pixels (dense or sparse depth alike).
        rng (`np.random.Generator`): Source of the resamples and seeds, so results are reproducible.
        max_tilt_deg (`float`): Largest accepted angle between the estimate and the camera's up direction.
        agreement_deg (`float`): Angle within which a resampled estimate agrees.
        min_confidence (`float`): Smallest share of agreeing resamples.
        max_inconsistency_deg (`float`): Largest angle to the up direction implied by vertical surfaces.
        max_ambiguity (`float`): Largest support of a competing direction relative to the winner's.
        min_support (`float`): Smallest share of the points on the horizontal layers.
        resamples (`int`): Number of resampled estimates.
        below_camera_m (`float`): Layers must lie this far below the camera (the ceiling never counts).
    """
    if len(points_camera) < 100:
        return GravityEstimate(CAMERA_AXES_FRAME, "camera_axes", reason="too few points")
    normals, variation = surface_normals(points_camera)
    # PCA normals have no sign: turn them towards the camera's up hemisphere, where the floor's points.
    normals *= np.where(normals[:, 1] > 0, -1.0, 1.0)[:, None]
    once = _estimate_up_once(points_camera, normals, variation, rng, max_tilt_deg, 0.05, below_camera_m)
    if once is None:
        return GravityEstimate(CAMERA_AXES_FRAME, "camera_axes", reason="no horizontal surface below the camera")
    up, inliers, ambiguity = once
    support = float(inliers.mean())
    angles = []
    for _ in range(resamples):
        subset = rng.choice(len(points_camera), size=int(0.6 * len(points_camera)), replace=False)
        again = _estimate_up_once(
            points_camera[subset], normals[subset], variation[subset], rng, max_tilt_deg, 0.05, below_camera_m
        )
        angles.append(angle_deg(again[0], up) if again is not None else 180.0)
    confidence = float(np.mean(np.array(angles) <= agreement_deg))
    inconsistency = _vertical_inconsistency(normals, variation, up)
    problems = []
    if support < min_support:
        problems.append(f"horizontal layers hold {support:.1%} of the points")
    if ambiguity > max_ambiguity:
        problems.append(f"a competing direction has {ambiguity:.0%} of the support")
    if confidence < min_confidence:
        problems.append(f"{confidence:.0%} of resampled estimates within {agreement_deg} deg")
    if inconsistency is not None and inconsistency > max_inconsistency_deg:
        problems.append(f"vertical surfaces disagree by {inconsistency:.1f} deg")
    trusted = not problems
    return GravityEstimate(
        GravityFrame.from_up(up) if trusted else CAMERA_AXES_FRAME,
        "estimated" if trusted else "camera_axes",
        confidence,
        float(max(angles)) if angles else 0.0,
        inconsistency,
        support,
        up,
        "; ".join(problems),
    )


def estimate_gravity_frame(
    points_camera: np.ndarray, rng: np.random.Generator, max_tilt_deg: float = 45.0
) -> GravityFrame:
    """`estimate_gravity(...).frame`: the trusted estimate, or the flagged camera-axes frame."""
    return estimate_gravity(points_camera, rng, max_tilt_deg=max_tilt_deg).frame


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
