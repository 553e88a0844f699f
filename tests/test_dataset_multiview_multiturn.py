"""Multi-view multi-turn builder: every turn against the synthetic scene's exact geometry; layout round trip."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from datasets import load_dataset

from dataset_builders.frames import SkipSample
from dataset_builders.multiview_multiturn import (
    FEATURES,
    MultiviewMultiturnArguments,
    MultiviewMultiturnBuilder,
    build,
)
from dataset_builders.questions import CUBE_TOLERANCE_M
from dataset_builders.spatial import Thresholds


SIZE = (320, 240)


@functools.lru_cache(maxsize=1)
def _rows() -> tuple:
    args = MultiviewMultiturnArguments(
        num_samples=16, image_width=SIZE[0], image_height=SIZE[1], view_mix="2:1,4:1,8:1", output_dir="unused"
    )
    builder = MultiviewMultiturnBuilder(args, Thresholds())
    rows = {}
    for index in range(args.num_samples):
        try:
            rows[index] = builder.example(index)
        except SkipSample:
            pass
    return builder, rows


def _camera_depth(pose: np.ndarray, world: np.ndarray) -> float:
    return float((pose[:3, :3].T @ (np.asarray(world) - pose[:3, 3]))[2])


def test_turn_structure_and_images():
    _, rows = _rows()
    assert len(rows) >= 6
    assert len({row["provenance"]["num_views"] for row in rows.values()}) >= 2
    for row in rows.values():
        levels = [t["level"] for t in row["turns"]]
        assert levels == sorted(levels, key=["pixel", "object", "scene", "caption"].index)
        assert levels.count("scene") == 1 and levels.count("caption") == 2
        assert len(row["turns"]) + len(row["provenance"]["dropped_turns"]) == 12
        first = row["messages"][0]["content"]
        assert [c["type"] for c in first] == ["image"] * row["provenance"]["num_views"] + ["text"]
        assert len(row["images"]) == row["provenance"]["num_views"]
        FEATURES.encode_example(row)


def test_no_view_is_named_twice_in_a_question():
    _, rows = _rows()
    texts = [
        part["text"]
        for row in rows.values()
        for message in row["messages"]
        if message["role"] == "user"
        for part in message["content"]
        if part["type"] == "text"
    ]
    assert texts and not [t for t in texts if any(f"in view {v} in view {v}" in t for v in range(1, 9))]
    assert any("How far apart are their centres?" in t for t in texts)


def test_every_turn_matches_scene_geometry():
    builder, rows = _rows()
    for index, row in rows.items():
        sequence, _ = builder.source.load(index)
        scene = sequence.scene
        frames = row["provenance"]["frames"]
        poses = [scene.poses[f] for f in frames]
        n = len(frames)
        truth = scene.answer_frame_cubes(frames[0])  # exact boxes in view 1's answer frame, by instance id - 1
        by_kind = {}
        for turn in row["turns"]:
            by_kind.setdefault(turn["kind"], []).append(turn)
        for turn in by_kind["absolute_depth"]:
            (view, u, v) = turn["points"][0]
            assert turn["value"] == pytest.approx(scene.render(frames[view - 1]).depth[v, u], abs=1e-5)
        cross = by_kind["cross_view_depth"][0]
        (_, u, v) = cross["points"][0]
        render = scene.render(frames[0])
        k = scene.intrinsics
        ray = np.array([(u - k.cx) / k.fx, (v - k.cy) / k.fy, 1.0]) * render.depth[v, u]
        world = poses[0][:3, :3] @ ray + poses[0][:3, 3]
        assert cross["value"] == pytest.approx(_camera_depth(poses[-1], world), abs=1e-4)
        closer = by_kind["closer_view"][0]
        depths = (_camera_depth(poses[0], world), _camera_depth(poses[-1], world))
        assert closer["answer"] == ("view 1" if depths[0] < depths[1] else f"view {n}")
        # Object turns: fused cubes within the cube tolerance of the true boxes, relations from the true centres.
        for cube_turn in by_kind["cube"]:
            true = truth[cube_turn["object_ids"][0] - 1]
            x, y, z, w, length, h, _ = cube_turn["vector"]
            np.testing.assert_allclose([x, y, z], true.center, atol=CUBE_TOLERANCE_M)
            assert h == pytest.approx(true.size[2], abs=CUBE_TOLERANCE_M)
            assert sorted([w, length]) == pytest.approx(sorted(true.size[:2]), abs=CUBE_TOLERANCE_M)
        obj_closer = by_kind["object_closer_view"][0]
        centre = scene.objects[obj_closer["object_ids"][0] - 1].center
        true_depths = (_camera_depth(poses[0], centre), _camera_depth(poses[-1], centre))
        assert obj_closer["answer"] == ("view 1" if true_depths[0] < true_depths[1] else f"view {n}")
        a, b = (truth[i - 1] for i in by_kind["distance"][0]["object_ids"])
        true_distance = float(np.linalg.norm(a.center - b.center))
        assert by_kind["distance"][0]["value"] == pytest.approx(true_distance, abs=CUBE_TOLERANCE_M)
        for kind, axis in (("left_right", 0), ("above_below", 2)):
            for turn in by_kind.get(kind, []):
                a, b = (truth[i - 1] for i in turn["object_ids"])
                true_offset = a.center[axis] - b.center[axis]
                assert np.sign(turn["value"]) == np.sign(true_offset)
                expected = {0: ("left", "right"), 2: ("below", "above")}[axis][int(true_offset > 0)]
                assert turn["answer"] == expected


def test_build_round_trip(tmp_path):
    args = MultiviewMultiturnArguments(
        num_samples=4,
        image_width=SIZE[0],
        image_height=SIZE[1],
        output_dir=str(tmp_path / "out"),
        samples_per_chunk=2,
        view_mix="2:1",
        min_yield=0.0,
    )
    manifest = build(args)
    ds = load_dataset(args.output_dir, split="train")
    assert len(ds) == manifest["built"] and manifest["attempted"] == 4
    assert "spatialboost-build-multiview-multiturn" in (tmp_path / "out" / "README.md").read_text()
    with pytest.raises(ValueError, match="synthetic"):
        MultiviewMultiturnArguments(source="posed_rgbd", num_samples=1)
