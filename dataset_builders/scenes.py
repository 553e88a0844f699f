"""Procedural indoor scenes rendered on the CPU with exact depth, instance masks, labels, intrinsics and poses.

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057) builds its spatial questions from estimated 3D
cues; these scenes give the same inputs with exact ground truth, so every answer can be checked, offline.

A scene is a box-shaped room (floor, four walls, ceiling) holding furniture-like boxes of named categories, some
standing on the floor and some on top of others. Everything is ray cast analytically, one vectorised pass per box
over the pixels its projection covers, so a 640x480 view takes tens of milliseconds. The world frame is `Z` up,
metres, origin at the floor centre; camera poses are camera-to-world matrices in the OpenCV camera convention of
`dataset_builders.geometry`.

```
    Z (up)          camera: x right, y down, z forward
    |  Y
    | /             floor Z = 0, ceiling Z = room height
    |/____ X        walls at X = +-width/2, Y = +-depth/2
```
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import Cube, GravityFrame, Intrinsics, canonical_yaw


@dataclass(frozen=True)
class Category:
    """Size ranges (metres) and colour of one object category.

    Args:
        width (`tuple[float, float]`): Range of the width (along the object's own x axis).
        length (`tuple[float, float]`): Range of the length (along its own y axis).
        height (`tuple[float, float]`): Range of the height.
        color (`tuple[int, int, int]`): Base RGB colour.
        support (`bool`): Whether smaller objects may be put on top of it.
    """

    width: tuple[float, float]
    length: tuple[float, float]
    height: tuple[float, float]
    color: tuple[int, int, int]
    support: bool = False


# Floor objects stay below 1.05 m and table-top objects below 0.45 m, and cameras stand at 1.6 m or higher, so the
# tops of unoccluded objects are visible and a cube fitted to the visible surface spans the whole object.
FLOOR_CATEGORIES = {
    "table": Category((0.8, 1.6), (0.6, 1.0), (0.65, 0.8), (150, 100, 60), support=True),
    "desk": Category((1.0, 1.5), (0.5, 0.75), (0.7, 0.78), (120, 85, 55), support=True),
    "cabinet": Category((0.4, 1.0), (0.35, 0.6), (0.6, 1.0), (200, 190, 170), support=True),
    "chair": Category((0.4, 0.55), (0.4, 0.55), (0.8, 1.0), (60, 90, 160)),
    "sofa": Category((1.6, 2.2), (0.8, 1.0), (0.7, 0.9), (120, 40, 50)),
    "bed": Category((1.4, 1.9), (1.9, 2.1), (0.45, 0.6), (220, 220, 235)),
    "ottoman": Category((0.4, 0.7), (0.4, 0.7), (0.35, 0.45), (170, 120, 170)),
    "plant": Category((0.3, 0.5), (0.3, 0.5), (0.5, 1.0), (50, 140, 60)),
    "bin": Category((0.25, 0.35), (0.25, 0.35), (0.3, 0.45), (90, 90, 90)),
}
TOP_CATEGORIES = {
    "lamp": Category((0.15, 0.3), (0.15, 0.3), (0.3, 0.45), (240, 210, 90)),
    "monitor": Category((0.45, 0.6), (0.1, 0.2), (0.3, 0.4), (30, 30, 35)),
    "vase": Category((0.1, 0.2), (0.1, 0.2), (0.2, 0.35), (80, 170, 200)),
    "book": Category((0.15, 0.25), (0.2, 0.3), (0.03, 0.06), (190, 60, 40)),
    "box": Category((0.2, 0.4), (0.2, 0.4), (0.15, 0.3), (190, 150, 100)),
}
CATEGORIES = {**FLOOR_CATEGORIES, **TOP_CATEGORIES}


@dataclass(frozen=True)
class SceneObject:
    """A box in the world frame.

    Args:
        instance_id (`int`): Value of its pixels in the instance map (1-based; 0 is the room).
        category (`str`): Category name.
        center (`np.ndarray`): `(3,)` world centre.
        size (`np.ndarray`): `(3,)` width, length, height.
        yaw (`float`): Rotation about world `Z`, radians.
    """

    instance_id: int
    category: str
    center: np.ndarray
    size: np.ndarray
    yaw: float

    def rotation(self) -> np.ndarray:
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    def corners(self) -> np.ndarray:
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
        return (signs * self.size / 2) @ self.rotation().T + self.center


@dataclass(frozen=True)
class Rendering:
    """One rendered view.

    Args:
        image (`np.ndarray`): `(H, W, 3)` uint8 RGB.
        depth (`np.ndarray`): `(H, W)` float32 depth (camera `z`) in metres; finite everywhere (the room is closed).
        instances (`np.ndarray`): `(H, W)` int32 instance ids, 0 for floor, walls and ceiling.
        intrinsics (`Intrinsics`): Pinhole intrinsics.
        camera_to_world (`np.ndarray`): `(4, 4)` pose.
    """

    image: np.ndarray
    depth: np.ndarray
    instances: np.ndarray
    intrinsics: Intrinsics
    camera_to_world: np.ndarray


def look_at(position: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """Camera-to-world pose of an OpenCV camera at `position` looking at `target`, rolled by `roll` radians."""
    forward = (target - position) / np.linalg.norm(target - position)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c, s = np.cos(roll), np.sin(roll)
    right, down = c * right + s * down, -s * right + c * down
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, down, forward], axis=1)
    pose[:3, 3] = position
    return pose


@dataclass(frozen=True)
class Scene:
    """A procedural room with objects and cameras; `render(view)` gives one view.

    Args:
        seed (`int`): Seed it was generated from.
        room (`np.ndarray`): `(3,)` room width (X), depth (Y) and height (Z).
        objects (`list[SceneObject]`): The objects.
        intrinsics (`Intrinsics`): Shared by all views.
        poses (`list[np.ndarray]`): Camera-to-world pose per view.
        image_size (`tuple[int, int]`): `(width, height)`.
    """

    seed: int
    room: np.ndarray
    objects: list[SceneObject]
    intrinsics: Intrinsics
    poses: list[np.ndarray]
    image_size: tuple[int, int]

    def answer_frame_cubes(self, view: int) -> list[Cube]:
        """Exact cubes of the objects in the answer frame of `view`, from the known pose (the ground truth)."""
        pose = self.poses[view]
        forward = pose[:3, 2].copy()
        forward[2] = 0.0
        y_axis = forward / np.linalg.norm(forward)
        x_axis = np.cross(y_axis, [0.0, 0.0, 1.0])
        world_to_answer = np.stack([x_axis, y_axis, [0.0, 0.0, 1.0]])
        heading = np.arctan2(y_axis[1], y_axis[0]) - np.pi / 2  # world yaw of the answer frame's Y axis
        cubes = []
        for obj in self.objects:
            center = world_to_answer @ (obj.center - pose[:3, 3])
            yaw, width, length = canonical_yaw(float(np.mod(obj.yaw - heading, 2 * np.pi)), *obj.size[:2])
            cubes.append(Cube(center, np.array([width, length, obj.size[2]]), yaw))
        return cubes

    def gravity_frame(self, view: int) -> GravityFrame:
        """Exact answer frame of `view`: world up written in camera coordinates."""
        return GravityFrame.from_up(self.poses[view][:3, :3].T @ np.array([0.0, 0.0, 1.0]))

    def render(self, view: int = 0) -> Rendering:
        """Ray-cast view `view`: RGB, depth, instance ids."""
        width, height = self.image_size
        k = self.intrinsics
        pose = self.poses[view]
        rotation, origin = pose[:3, :3], pose[:3, 3]
        us, vs = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
        # Ray directions with unit camera-z component, so the ray parameter t is the depth itself.
        rays_camera = np.stack([(us - k.cx) / k.fx, (vs - k.cy) / k.fy, np.ones_like(us)], axis=-1)
        rays = rays_camera @ rotation.T  # (H, W, 3) world directions

        depth, normals, colors = self._room_hits(origin, rays)
        instances = np.zeros((height, width), dtype=np.int32)
        for obj in self.objects:
            self._trace_box(obj, origin, rays, rotation, depth, normals, colors, instances)

        light = np.array([0.3, -0.5, 1.0]) / np.linalg.norm([0.3, -0.5, 1.0])
        shade = 0.45 + 0.55 * np.clip(normals @ light, 0.0, 1.0)
        image = np.clip(colors * shade[..., None], 0, 255).astype(np.uint8)
        return Rendering(image, depth.astype(np.float32), instances, k, pose)

    def _room_hits(self, origin: np.ndarray, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        half = self.room / 2
        low, high = np.array([-half[0], -half[1], 0.0]), np.array([half[0], half[1], self.room[2]])
        with np.errstate(divide="ignore", invalid="ignore"):
            exits = np.where(rays > 0, (high - origin) / rays, (low - origin) / rays)
        exits = np.where(np.isfinite(exits) & (exits > 0), exits, np.inf)
        axis = exits.argmin(axis=-1)
        t = np.take_along_axis(exits, axis[..., None], axis=-1)[..., 0]
        sign = np.sign(np.take_along_axis(rays, axis[..., None], axis=-1)[..., 0])
        normals = np.zeros(rays.shape)
        np.put_along_axis(normals, axis[..., None], -sign[..., None], axis=-1)

        points = origin + rays * t[..., None]
        colors = np.empty(rays.shape)
        colors[:] = (215, 210, 195)  # walls
        floor = (axis == 2) & (sign < 0)
        checker = (np.floor(points[..., 0] / 0.5) + np.floor(points[..., 1] / 0.5)) % 2
        colors[floor] = np.where(checker[floor, None] > 0, (170, 130, 90), (140, 105, 70))
        colors[(axis == 2) & (sign > 0)] = (245, 245, 245)  # ceiling
        colors[(axis == 1) & (sign > 0)] = (200, 210, 220)  # far wall, a little bluer to read the room
        return t, normals, colors

    def _trace_box(
        self,
        obj: SceneObject,
        origin: np.ndarray,
        rays: np.ndarray,
        rotation: np.ndarray,
        depth: np.ndarray,
        normals: np.ndarray,
        colors: np.ndarray,
        instances: np.ndarray,
    ) -> None:
        height, width = depth.shape
        corners_camera = (obj.corners() - origin) @ rotation  # world -> camera: R^T p, written row-wise
        if (corners_camera[:, 2] > 1e-3).all():
            k = self.intrinsics
            u = k.fx * corners_camera[:, 0] / corners_camera[:, 2] + k.cx
            v = k.fy * corners_camera[:, 1] / corners_camera[:, 2] + k.cy
            u0, u1 = max(int(np.floor(u.min())), 0), min(int(np.ceil(u.max())) + 1, width)
            v0, v1 = max(int(np.floor(v.min())), 0), min(int(np.ceil(v.max())) + 1, height)
            if u0 >= u1 or v0 >= v1:
                return
        elif (corners_camera[:, 2] <= 1e-3).all():
            return
        else:
            u0, u1, v0, v1 = 0, width, 0, height
        box_rotation = obj.rotation()
        local_rays = rays[v0:v1, u0:u1] @ box_rotation  # world -> box frame
        local_origin = (origin - obj.center) @ box_rotation
        half = obj.size / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (-half - local_origin) / local_rays
            t2 = (half - local_origin) / local_rays
        t_min, t_max = np.fmin(t1, t2), np.fmax(t1, t2)
        entry_axis = t_min.argmax(axis=-1)
        t_near = np.take_along_axis(t_min, entry_axis[..., None], axis=-1)[..., 0]
        t_far = t_max.min(axis=-1)
        region = depth[v0:v1, u0:u1]
        hit = (t_near <= t_far) & (t_near > 0) & (t_near < region)
        if not hit.any():
            return
        region[hit] = t_near[hit]
        local_normal = np.zeros(local_rays.shape)
        entry_sign = -np.sign(np.take_along_axis(local_rays, entry_axis[..., None], axis=-1)[..., 0])
        np.put_along_axis(local_normal, entry_axis[..., None], entry_sign[..., None], axis=-1)
        normals[v0:v1, u0:u1][hit] = local_normal[hit] @ box_rotation.T
        colors[v0:v1, u0:u1][hit] = CATEGORIES[obj.category].color
        instances[v0:v1, u0:u1][hit] = obj.instance_id


def _inside_view(obj: SceneObject, pose: np.ndarray, intrinsics: Intrinsics, size: tuple[int, int]) -> bool:
    camera = (obj.corners() - pose[:3, 3]) @ pose[:3, :3]
    if (camera[:, 2] < 0.5).any():
        return False
    u = intrinsics.fx * camera[:, 0] / camera[:, 2] + intrinsics.cx
    v = intrinsics.fy * camera[:, 1] / camera[:, 2] + intrinsics.cy
    margin = 0.03 * size[0]
    return bool(
        (u > margin).all() and (u < size[0] - margin).all() and (v > margin).all() and (v < size[1] - margin).all()
    )


def generate_scene(
    seed: int,
    num_objects: tuple[int, int] = (8, 12),
    image_size: tuple[int, int] = (640, 480),
    num_views: int = 3,
) -> Scene:
    """Deterministic random room for `seed`.

    Floor objects are placed where view 0 sees them whole, without overlapping footprints; the rest go on top of
    tables, desks and cabinets. Extra views look at the same objects from cameras moved along the near wall.

    Args:
        seed (`int`): Everything follows from it.
        num_objects (`tuple[int, int]`): Inclusive range of the number of objects.
        image_size (`tuple[int, int]`): `(width, height)` of every view.
        num_views (`int`): Number of camera poses.
    """
    rng = np.random.default_rng(seed)
    room = np.array([rng.uniform(6.0, 9.0), rng.uniform(6.0, 9.0), 2.8])
    intrinsics = Intrinsics.from_fov(*image_size, horizontal_fov_deg=rng.uniform(60.0, 75.0))

    camera_height = rng.uniform(1.6, 2.2)
    position = np.array([rng.uniform(-0.5, 0.5), -room[1] / 2 + 0.3, camera_height])
    heading = rng.uniform(-0.3, 0.3)
    pitch = rng.uniform(np.radians(25), np.radians(40))
    aim = np.array([np.sin(heading), np.cos(heading), 0.0])
    target = position + aim * np.cos(pitch) - np.array([0.0, 0.0, np.sin(pitch)])
    poses = [look_at(position, target, roll=rng.uniform(-0.05, 0.05))]

    wanted = int(rng.integers(num_objects[0], num_objects[1] + 1))
    num_floor = max(1, wanted - int(rng.integers(2, 4)))
    objects: list[SceneObject] = []
    floor_names = list(FLOOR_CATEGORIES)
    for _ in range(400):
        if len(objects) == num_floor:
            break
        name = floor_names[int(rng.integers(len(floor_names)))]
        cat = FLOOR_CATEGORIES[name]
        size = np.array([rng.uniform(*cat.width), rng.uniform(*cat.length), rng.uniform(*cat.height)])
        ahead, lateral = rng.uniform(1.3, 6.0), rng.uniform(-0.6, 0.6)
        xy = position[:2] + aim[:2] * ahead + np.array([aim[1], -aim[0]]) * lateral * ahead
        candidate = SceneObject(len(objects) + 1, name, np.array([*xy, size[2] / 2]), size, rng.uniform(0, np.pi))
        radius = np.linalg.norm(size[:2]) / 2
        inside_room = (np.abs(xy) + radius < room[:2] / 2 - 0.05).all()
        apart = all(
            np.linalg.norm(xy - o.center[:2]) > radius + np.linalg.norm(o.size[:2]) / 2 + 0.15 for o in objects
        )
        if inside_room and apart and _inside_view(candidate, poses[0], intrinsics, image_size):
            objects.append(candidate)

    top_names = list(TOP_CATEGORIES)
    supports = [o for o in objects if FLOOR_CATEGORIES[o.category].support]
    rng.shuffle(supports)
    for base in supports[: wanted - len(objects)]:
        name = top_names[int(rng.integers(len(top_names)))]
        cat = TOP_CATEGORIES[name]
        size = np.array([rng.uniform(*cat.width), rng.uniform(*cat.length), rng.uniform(*cat.height)])
        # Keep the whole footprint on the support: offset within the support's half size minus the object's radius.
        room_left = np.maximum(base.size[:2] / 2 - np.linalg.norm(size[:2]) / 2, 0.0)
        offset = base.rotation()[:2, :2] @ (rng.uniform(-1, 1, 2) * room_left)
        center = np.array([*(base.center[:2] + offset), base.size[2] + size[2] / 2])
        objects.append(SceneObject(len(objects) + 1, name, center, size, rng.uniform(0, np.pi)))

    centroid = np.mean([o.center for o in objects], axis=0) if objects else target
    for _ in range(1, num_views):
        shifted = position + np.array([rng.uniform(-1.2, 1.2), rng.uniform(0.0, 0.6), rng.uniform(-0.1, 0.2)])
        poses.append(look_at(shifted, centroid, roll=rng.uniform(-0.05, 0.05)))
    return Scene(seed, room, objects, intrinsics, poses, image_size)
