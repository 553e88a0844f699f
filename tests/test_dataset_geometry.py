"""The conventions of `dataset_builders.geometry`, predicate by predicate, on synthetic scenes with exact truth, and
the cleaning, gravity and registration steps that real depth needs."""

import numpy as np
import pytest

from dataset_builders.geometry import (
    CAMERA_AXES_FRAME,
    Cube,
    GravityFrame,
    Intrinsics,
    above,
    angle_deg,
    canonical_yaw,
    centre_distance,
    closest_point_distance,
    connected_parts,
    depth_edges,
    discontinuities,
    erode_mask,
    estimate_gravity,
    estimate_gravity_frame,
    fit_cube,
    in_front_of,
    left_of,
    occluded_boundary_fraction,
    project,
    register_depth,
    sparse_window_px,
    unproject,
    valid_neighbour_share,
)
from dataset_builders.scenes import generate_scene, look_at


K = Intrinsics(500.0, 480.0, 319.5, 239.5)


def test_pixels_and_camera_axes():
    # u grows to the right (+x), v grows downwards (+y), depth is z; the principal point is on the optical axis.
    points = np.array([[0.0, 0.0, 2.0], [1.0, 0.0, 2.0], [0.0, 1.0, 2.0]])
    u, v, z = project(points, K)
    assert (u[0], v[0]) == (K.cx, K.cy)
    assert u[1] > K.cx and v[1] == K.cy
    assert v[2] > K.cy and u[2] == K.cx
    np.testing.assert_array_equal(z, [2.0, 2.0, 2.0])


def test_unproject_inverts_project():
    rng = np.random.default_rng(0)
    points = rng.uniform([-2, -2, 0.5], [2, 2, 8], size=(100, 3))
    u, v, z = project(points, K)
    np.testing.assert_allclose(unproject(u, v, z, K), points, atol=1e-12)


def test_depth_is_z_not_ray_length_in_renderer():
    scene = generate_scene(4)
    rendering = scene.render(0)
    vs, us = np.nonzero(rendering.instances == 0)
    pick = np.random.default_rng(0).choice(len(vs), 200, replace=False)
    vs, us = vs[pick], us[pick]
    camera = unproject(us.astype(float), vs.astype(float), rendering.depth[vs, us].astype(float), scene.intrinsics)
    world = camera @ rendering.camera_to_world[:3, :3].T + rendering.camera_to_world[:3, 3]
    half = scene.room / 2
    # Every background pixel lies on the floor, the ceiling or a wall of the room: z-depth is exact.
    on_surface = (
        np.isclose(world[:, 2], 0, atol=1e-4)
        | np.isclose(world[:, 2], scene.room[2], atol=1e-4)
        | np.isclose(np.abs(world[:, 0]), half[0], atol=1e-4)
        | np.isclose(np.abs(world[:, 1]), half[1], atol=1e-4)
    )
    assert on_surface.all()


def test_answer_frame_axes_from_pose():
    # A camera looking along world +Y, pitched down: answer X = world X (right), Y = world Y (forward), Z = up.
    pose = look_at(np.array([0.0, 0.0, 1.5]), np.array([0.0, 3.0, 0.0]))
    up_camera = pose[:3, :3].T @ np.array([0.0, 0.0, 1.0])
    frame = GravityFrame.from_up(up_camera)
    to_camera = pose[:3, :3].T  # world -> camera rotation
    for world_axis, expected in ((np.eye(3)[0], [1, 0, 0]), (np.eye(3)[1], [0, 1, 0]), (np.eye(3)[2], [0, 0, 1])):
        np.testing.assert_allclose(frame.to_answer((to_camera @ world_axis)[None])[0], expected, atol=1e-12)
    assert np.linalg.det(frame.rotation) == pytest.approx(1.0)


def test_answer_frame_of_a_camera_looking_straight_down():
    # No horizontal part of the optical axis: forward is the image's up (-y), and the frame stays a rotation.
    frame = GravityFrame.from_up(np.array([0.0, 0.0, -1.0]))
    np.testing.assert_allclose(frame.rotation, [[1, 0, 0], [0, -1, 0], [0, 0, -1]], atol=1e-12)
    assert np.linalg.det(frame.rotation) == pytest.approx(1.0)


def test_camera_axes_fallback_is_right_handed_and_named():
    np.testing.assert_array_equal(CAMERA_AXES_FRAME.to_answer(np.array([[1.0, 2.0, 3.0]])), [[1.0, 3.0, -2.0]])
    assert np.linalg.det(CAMERA_AXES_FRAME.rotation) == pytest.approx(1.0)
    assert not CAMERA_AXES_FRAME.aligned


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gravity_estimated_from_floor(seed):
    scene = generate_scene(seed)
    rendering = scene.render(0)
    vs, us = np.nonzero(np.ones_like(rendering.depth, dtype=bool))
    pick = np.random.default_rng(seed).choice(len(vs), 3000, replace=False)
    points = unproject(
        us[pick].astype(float), vs[pick].astype(float), rendering.depth[vs[pick], us[pick]], scene.intrinsics
    )
    frame = estimate_gravity_frame(points, np.random.default_rng(seed))
    truth = scene.gravity_frame(0)
    assert frame.aligned
    angle = np.degrees(np.arccos(np.clip(frame.rotation[2] @ truth.rotation[2], -1, 1)))
    assert angle < 0.5
    np.testing.assert_allclose(frame.rotation, truth.rotation, atol=0.01)


def test_gravity_rejects_walls_and_steep_planes():
    rng = np.random.default_rng(0)
    # Only a wall facing the camera (normal along -z): no floor-like plane, so the flagged camera-axes frame.
    wall = np.column_stack([rng.uniform(-2, 2, 2000), rng.uniform(-1, 1, 2000), np.full(2000, 3.0)])
    assert estimate_gravity_frame(wall, rng) is CAMERA_AXES_FRAME
    # A floor tilted 60 degrees from the camera's up direction exceeds max_tilt_deg=45.
    tilt = np.radians(60)
    normal = np.array([0.0, -np.cos(tilt), -np.sin(tilt)])
    basis = np.linalg.svd(normal[None])[2][1:]
    plane = rng.uniform(-2, 2, (2000, 2)) @ basis - normal * 1.5  # 1.5 m below the camera along the normal
    assert not estimate_gravity_frame(plane, rng, max_tilt_deg=45).aligned
    assert estimate_gravity_frame(plane, rng, max_tilt_deg=70).aligned


def _cube(x, y, z, size=(0.5, 0.5, 0.5), yaw=0.0):
    return Cube(np.array([x, y, z], dtype=float), np.array(size, dtype=float), yaw)


def test_relation_predicates_and_near_ties():
    a, b = _cube(-1.0, 2.0, -1.0), _cube(1.0, 4.0, 0.0)
    assert left_of(a, b, 0.1) is True and left_of(b, a, 0.1) is False
    assert in_front_of(a, b, 0.1) is True and in_front_of(b, a, 0.1) is False
    assert above(b, a, 0.1) is True and above(a, b, 0.1) is False
    c = _cube(-0.95, 2.05, -0.95)
    assert left_of(a, c, 0.1) is None and in_front_of(a, c, 0.1) is None and above(a, c, 0.1) is None


def _world_truth(scene, view, i, j):
    """Relations of objects i, j from world coordinates and the pose, without the answer frame."""
    pose = scene.poses[view]
    forward = pose[:3, 2] * np.array([1, 1, 0])
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0, 0, 1])
    d = scene.objects[i].center - scene.objects[j].center
    return {"left": d @ right < 0, "front": d @ forward < 0, "above": d[2] > 0}


@pytest.mark.parametrize("seed", [3, 7])
def test_predicates_on_scene_truth_match_world_geometry(seed):
    scene = generate_scene(seed)
    cubes = scene.answer_frame_cubes(0)
    checked = 0
    for i in range(len(cubes)):
        for j in range(len(cubes)):
            if i == j:
                continue
            truth = _world_truth(scene, 0, i, j)
            for predicate, key in ((left_of, "left"), (in_front_of, "front"), (above, "above")):
                result = predicate(cubes[i], cubes[j], 0.05)
                if result is not None:
                    assert result == truth[key]
                    checked += 1
    assert checked > 50


def test_fit_cube_recovers_yawed_box_from_its_surface():
    rng = np.random.default_rng(0)
    size, yaw, center = np.array([1.2, 0.6, 0.8]), np.radians(30), np.array([0.5, 3.0, -1.0])
    local = rng.uniform(-0.5, 0.5, (4000, 3)) * size
    axis = rng.integers(0, 3, 4000)
    local[np.arange(4000), axis] = np.sign(local[np.arange(4000), axis]) * size[axis] / 2  # on the faces
    c, s = np.cos(yaw), np.sin(yaw)
    points = local @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T + center
    cube = fit_cube(points)
    np.testing.assert_allclose(cube.center, center, atol=0.01)
    np.testing.assert_allclose(cube.size, size, atol=0.02)
    assert np.degrees(cube.yaw) == pytest.approx(30.0, abs=1.0)
    # The same box turned by another 90 degrees: same canonical yaw, width and length swapped.
    turned = fit_cube(points @ np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]]).T)
    assert np.degrees(turned.yaw) == pytest.approx(30.0, abs=1.0)
    np.testing.assert_allclose(turned.size, size[[1, 0, 2]], atol=0.02)


def test_canonical_yaw_and_corners():
    yaw, w, length = canonical_yaw(np.radians(100), 1.0, 2.0)
    assert np.degrees(yaw) == pytest.approx(10.0) and (w, length) == (2.0, 1.0)
    cube = Cube(np.zeros(3), np.array([2.0, 1.0, 0.5]), np.radians(90 - 1e-9))
    corners = cube.corners()
    np.testing.assert_allclose(np.ptp(corners, axis=0), [1.0, 2.0, 0.5], atol=1e-6)


def test_distances():
    a, b = _cube(0, 0, 0), _cube(3, 4, 0)
    assert centre_distance(a, b) == pytest.approx(5.0)
    grid = np.stack(np.meshgrid(*[np.linspace(-0.25, 0.25, 11)] * 3), -1).reshape(-1, 3)
    assert closest_point_distance(grid, grid + [1.0, 0, 0]) == pytest.approx(0.5)


def test_mask_cleaning_steps():
    mask = np.zeros((40, 40), bool)
    mask[10:30, 10:30] = True
    eroded = erode_mask(mask, 2)
    assert eroded.sum() == 16 * 16 and eroded[12:28, 12:28].all()
    depth = np.full((40, 40), 2.0, np.float32)
    depth[:, 20:] = 4.0
    depth[0, 0] = np.nan
    edges = depth_edges(depth, 0.05)
    assert edges[:, 19:21].all() and not edges[5:, 5:18].any() and edges[0, 0] and edges[1, 0]


def test_discontinuities_flag_both_sides_of_jumps_but_not_holes():
    depth = np.full((40, 40), 2.0, np.float32)
    depth[:, 20:] = 4.0
    depth[5:9, 5:9] = np.nan  # a dropout inside the near surface
    flagged = discontinuities(depth, 0.05, radius=1)
    assert flagged[:, 19].all() and flagged[:, 20].all()
    assert not flagged[:, :19].any() and not flagged[:, 21:].any()  # the hole's border is not an edge
    # A slanted surface changes depth smoothly: nothing flagged.
    ramp = np.tile(np.linspace(2.0, 3.0, 40, dtype=np.float32), (40, 1))
    assert not discontinuities(ramp, 0.05).any()
    # Sparse depth: the window reaches the next readings, so the jump is still found.
    rng = np.random.default_rng(0)
    sparse = np.where(rng.random(depth.shape) < 0.15, np.nan_to_num(depth, nan=2.0), np.nan).astype(np.float32)
    share = valid_neighbour_share(sparse)
    assert share < 0.5 and sparse_window_px(share) >= 2 and sparse_window_px(0.9) == 1
    found = discontinuities(sparse, 0.05, radius=sparse_window_px(share))
    assert found[:, 15:25].sum() > 0.5 * np.isfinite(sparse[:, 17:23]).sum()
    assert not found[:, :14].any() and not found[:, 26:].any()


def test_connected_parts_keep_pieces_of_one_object_and_drop_far_specks():
    rng = np.random.default_rng(0)
    # A mattress and a headboard behind it, 0.3 m apart (two large parts), a few points right next to the
    # mattress, and a speck 1 m away (a stray reading).
    mattress = rng.uniform([0, 0, 0], [1.6, 2.0, 0.02], (3000, 3))
    headboard = rng.uniform([0, 2.3, 0], [1.6, 2.32, 1.0], (1500, 3))
    near = rng.uniform([1.65, 0.5, 0], [1.7, 0.6, 0.05], (10, 3))
    speck = rng.uniform([3.0, 3.0, 0.0], [3.05, 3.05, 0.05], (20, 3))
    points = np.vstack([mattress, headboard, near, speck])
    kept = connected_parts(points, part_gap_m=0.15, min_part_share=0.01)
    assert kept[: 3000 + 1500 + 10].all() and not kept[-20:].any()
    # With a part share above the headboard's, only the largest part and what is within the gap stay.
    strict = connected_parts(points, part_gap_m=0.15, min_part_share=0.5)
    assert strict[:3000].all() and not strict[3000:4500].any() and strict[4500:4510].all()


def _rolled_room_points(rng, roll_deg, noise=True, share=1.0):
    """Points of a rendered room seen by a rolled, low camera, with Kinect-like noise or subsampling."""
    from dataclasses import replace

    scene = generate_scene(11)
    position = scene.poses[0][:3, 3].copy()
    position[2] = 1.3
    pose = look_at(position, position + np.array([0.3, 3.0, -0.6]), roll=np.radians(roll_deg))
    scene = replace(scene, poses=[pose])
    rendering = scene.render(0)
    depth = rendering.depth.astype(np.float64)
    if noise:
        depth = depth + rng.normal(size=depth.shape) * (0.0012 + 0.0019 * np.maximum(depth - 0.4, 0) ** 2)
    vs, us = np.nonzero(rng.random(depth.shape) < share)
    pick = rng.choice(len(vs), 6000, replace=False)
    points = unproject(us[pick].astype(float), vs[pick].astype(float), depth[vs[pick], us[pick]], scene.intrinsics)
    return points, pose[:3, :3].T @ np.array([0.0, 0.0, 1.0])


@pytest.mark.parametrize("roll_deg, share", [(0.0, 1.0), (14.0, 1.0), (-20.0, 0.13)])
def test_gravity_estimate_is_trusted_and_accurate_on_noisy_rolled_views(roll_deg, share):
    rng = np.random.default_rng(3)
    points, up = _rolled_room_points(rng, roll_deg, share=share)
    estimate = estimate_gravity(points, rng)
    assert estimate.frame.aligned and estimate.source == "estimated" and not estimate.reason
    assert estimate.confidence >= 0.9 and estimate.spread_deg < 2.0
    assert angle_deg(estimate.frame.rotation[2], up) < 1.5


def test_gravity_estimate_refuses_ambiguous_and_unsupported_views():
    rng = np.random.default_rng(0)
    # Two large tilted planes below the camera, 20 degrees apart, equally supported: no trustworthy up.
    planes = []
    for tilt in (-10.0, 10.0):
        normal = np.array([np.sin(np.radians(tilt)), -np.cos(np.radians(tilt)), 0.0])
        basis = np.linalg.svd(normal[None])[2][1:]
        offset = np.array([2.0 * np.sign(tilt), 0.0, 3.0])
        planes.append(rng.uniform(-1.5, 1.5, (3000, 2)) @ basis - normal * 1.2 + offset)
    ambiguous = estimate_gravity(np.vstack(planes), rng)
    assert not ambiguous.frame.aligned and ambiguous.frame is CAMERA_AXES_FRAME and ambiguous.reason
    # A wall only: nothing horizontal below the camera.
    wall = np.column_stack([rng.uniform(-2, 2, 3000), rng.uniform(-1, 1, 3000), np.full(3000, 3.0)])
    unsupported = estimate_gravity(wall, rng)
    assert not unsupported.frame.aligned and "horizontal" in unsupported.reason


def test_register_depth_reads_the_sensor_value_along_each_colour_ray():
    rng = np.random.default_rng(0)
    depth_k, color_k = Intrinsics(290.0, 290.0, 159.5, 119.5), Intrinsics(580.0, 580.0, 319.5, 239.5)
    depth = rng.uniform(1.0, 4.0, (240, 320)).astype(np.float32)
    depth[10:20, 10:20] = 0.0  # no reading
    registered = register_depth(depth, depth_k, color_k, (640, 480))
    assert registered.shape == (480, 640)
    # Every colour pixel holds the reading of the depth pixel its ray passes through.
    for u, v in [(0, 0), (321, 200), (639, 479), (100, 50)]:
        col = round((u - color_k.cx) / color_k.fx * depth_k.fx + depth_k.cx)
        row = round((v - color_k.cy) / color_k.fy * depth_k.fy + depth_k.cy)
        expected = depth[row, col] if depth[row, col] > 0 else np.nan
        np.testing.assert_equal(registered[v, u], expected)
    assert set(np.unique(registered[np.isfinite(registered)])) <= set(np.unique(depth[depth > 0]))
    # A colour camera 5 cm to the right: points move left in its image; the z-buffer keeps the nearer surface.
    wall = np.full((240, 320), 3.0, np.float32)
    wall[:, 150:170] = 1.0  # a near post
    shift = np.eye(4)
    shift[0, 3] = -0.05
    moved = register_depth(wall, depth_k, color_k, (640, 480), shift)
    post = np.isclose(moved, 1.0)
    expected_shift = -0.05 * color_k.fx / 1.0
    columns = np.nonzero(post.any(axis=0))[0]
    original = (np.array([150, 169]) - depth_k.cx) / depth_k.fx * color_k.fx + color_k.cx
    assert (
        abs(columns.min() - (original[0] + expected_shift)) <= 2
        and abs(columns.max() - (original[1] + expected_shift)) <= 3
    )
    assert np.isclose(moved[240, int(np.mean(columns))], 1.0)


def test_occlusion_share_counts_in_front_and_touching_from_above_only():
    mask = np.zeros((30, 30), bool)
    mask[10:20, 10:20] = True
    depth = np.full((30, 30), 5.0, np.float32)
    depth[mask] = 2.0
    nobody = np.zeros_like(mask)
    assert occluded_boundary_fraction(mask, depth, nobody) == 0.0
    # Something closer covering the left column of the outline.
    depth[10:20, 9] = 1.0
    assert occluded_boundary_fraction(mask, depth, nobody) == pytest.approx(10 / 36)
    depth[10:20, 9] = 5.0
    # A touching object at the same depth above the object hides its top; below it is a support and does not.
    other = np.zeros_like(mask)
    other[9, 10:20] = True
    depth[9, 10:20] = 2.0
    assert occluded_boundary_fraction(mask, depth, other) == pytest.approx(10 / 36)
    other[:] = False
    other[20, 10:20] = True
    depth[9, 10:20], depth[20, 10:20] = 5.0, 2.0
    assert occluded_boundary_fraction(mask, depth, other) == 0.0
