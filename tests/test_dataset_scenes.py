"""The procedural scene source: determinism, exact depth, masks and labels, consistent multi-view poses."""

import numpy as np

from dataset_builders.geometry import project, unproject
from dataset_builders.scenes import CATEGORIES, generate_scene
from dataset_builders.sources import SyntheticSource


def test_deterministic_given_seed_and_different_across_seeds():
    a, b, c = generate_scene(11).render(0), generate_scene(11).render(0), generate_scene(12).render(0)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.depth, b.depth)
    np.testing.assert_array_equal(a.instances, b.instances)
    assert not np.array_equal(a.depth, c.depth)


def test_scene_contents_and_outputs():
    scene = generate_scene(5, num_objects=(8, 12))
    rendering = scene.render(0)
    assert 8 <= len(scene.objects) <= 12
    assert rendering.image.shape == (480, 640, 3) and rendering.image.dtype == np.uint8
    assert rendering.depth.dtype == np.float32 and np.isfinite(rendering.depth).all() and (rendering.depth > 0).all()
    assert all(obj.category in CATEGORIES for obj in scene.objects)
    ids = set(np.unique(rendering.instances)) - {0}
    assert ids <= {obj.instance_id for obj in scene.objects} and len(ids) >= 6


def test_instance_pixels_lie_on_their_box():
    scene = generate_scene(8)
    rendering = scene.render(0)
    for obj in scene.objects:
        vs, us = np.nonzero(rendering.instances == obj.instance_id)
        if len(vs) == 0:
            continue
        camera = unproject(us.astype(float), vs.astype(float), rendering.depth[vs, us].astype(float), scene.intrinsics)
        world = camera @ rendering.camera_to_world[:3, :3].T + rendering.camera_to_world[:3, 3]
        local = np.abs((world - obj.center) @ obj.rotation())
        # Inside the box (within float tolerance) and on one of its faces.
        assert (local <= obj.size / 2 + 1e-3).all()
        assert (np.abs(local - obj.size / 2).min(axis=1) < 1e-3).all()


def test_views_are_consistent_through_their_poses():
    scene = generate_scene(21, num_views=3)
    first, second = scene.render(0), scene.render(2)
    rng = np.random.default_rng(0)
    vs, us = np.nonzero(first.instances > 0)
    pick = rng.choice(len(vs), 500, replace=False)
    camera = unproject(
        us[pick].astype(float), vs[pick].astype(float), first.depth[vs[pick], us[pick]], scene.intrinsics
    )
    world = camera @ first.camera_to_world[:3, :3].T + first.camera_to_world[:3, 3]
    in_second = (world - second.camera_to_world[:3, 3]) @ second.camera_to_world[:3, :3]
    u, v, z = project(in_second, scene.intrinsics)
    inside = (u >= 0) & (u < 639.5) & (v >= 0) & (v < 479.5) & (z > 0)
    ui, vi = np.round(u[inside]).astype(int), np.round(v[inside]).astype(int)
    # A 3D point seen in view 0 appears in view 2 at its projected depth unless something hides it there.
    agree = np.abs(second.depth[vi, ui] - z[inside]) < 0.02 * z[inside] + 0.01
    assert inside.mean() > 0.5 and agree.mean() > 0.7
    assert not np.allclose(first.camera_to_world, second.camera_to_world)


def test_synthetic_source_frames():
    source = SyntheticSource(seed=3, num_samples=4)
    frame = source.load(2)
    again = source.load(2)
    assert len(source) == 4 and frame.sample_id == again.sample_id
    assert frame.image.size == (640, 480) and frame.depth.shape == (480, 640)
    rendering = source.scene(2).render(0)
    categories = {o.instance_id: o.category for o in source.scene(2).objects}
    ids = [i for i in np.unique(rendering.instances) if i != 0]
    assert [inst.category for inst in frame.instances] == [categories[i] for i in ids]
    for inst, instance_id in zip(frame.instances, ids, strict=True):
        np.testing.assert_array_equal(inst.mask, rendering.instances == instance_id)
    assert source.load(1).sample_id != frame.sample_id
