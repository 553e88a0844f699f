"""Unposed frames: metric scale recovered from known poses or metric depth; optional backends fail clearly."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest
from datasets import load_dataset

from dataset_builders import multiview_vqa
from dataset_builders.reconstruction import (
    Reconstruction,
    VGGTBackend,
    apply_scale,
    read_video_frames,
    sample_frame_indices,
    scale_from_known_poses,
    scale_from_metric_depth,
)
from dataset_builders.spatial import Thresholds
from dataset_builders.views import SelectionThresholds, SyntheticSequence, covisibility


def _up_to_scale(scale: float):
    """Exact views of a synthetic path, shrunk by `scale` and moved to another world frame (what VGGT returns)."""
    sequence = SyntheticSequence.generate(3, 8, (160, 120), (6, 8))
    views = [sequence.view(i) for i in range(8)]
    angle = 0.7
    frame = np.eye(4)
    frame[:3, :3] = [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    frame[:3, 3] = [3.0, -1.0, 0.5]
    shrunk = []
    for view in views:
        pose = frame @ view.camera_to_world
        pose[:3, 3] *= scale
        shrunk.append(dataclasses.replace(view, depth=view.depth * scale, camera_to_world=pose))
    return views, Reconstruction(shrunk, False, "none", "test")


def test_scale_from_known_poses_and_metric_depth_recover_metres():
    views, reconstruction = _up_to_scale(0.37)
    scale = scale_from_known_poses(reconstruction, [v.camera_to_world for v in views])
    assert scale == pytest.approx(1 / 0.37, rel=1e-9)
    assert scale_from_metric_depth(reconstruction, [v.depth for v in views]) == pytest.approx(1 / 0.37, rel=1e-5)
    metric = apply_scale(reconstruction, scale, "known_poses")
    assert metric.is_metric and metric.scale_source == "known_poses"
    np.testing.assert_allclose(metric.views[2].depth, views[2].depth, rtol=1e-5)
    # Geometry across views is unchanged by the rigid move and the scale: covisibility is the same.
    selection = SelectionThresholds()
    a = covisibility(views[0], views[5], selection, np.random.default_rng(0))
    b = covisibility(metric.views[0], metric.views[5], selection, np.random.default_rng(0))
    assert a == pytest.approx(b, abs=1e-6)
    with pytest.raises(ValueError, match="1 cm"):
        scale_from_known_poses(reconstruction, [views[0].camera_to_world] * len(views))


def test_frame_sampling_and_missing_optional_backends():
    assert sample_frame_indices(100, 8) == [0, 14, 28, 42, 57, 71, 85, 99]
    with pytest.raises(ValueError):
        sample_frame_indices(3, 8)
    if importlib.util.find_spec("vggt") is None:
        with pytest.raises(RuntimeError, match="pip install git\\+https://github.com/facebookresearch/vggt"):
            VGGTBackend()
    if importlib.util.find_spec("av") is None:
        with pytest.raises(RuntimeError, match="pip install av"):
            read_video_frames("missing.mp4", 8)


def test_unposed_frames_build_asks_only_scale_free_questions(tmp_path, monkeypatch):
    views, reconstruction = _up_to_scale(0.37)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, view in enumerate(views):
        view.image.save(folder / f"{i:04d}.png")

    class FakeVGGT:
        """Stands in for VGGT: the exact views, shrunk and moved (VGGT's own scale and frame)."""

        def __init__(self, model_id, revision, device):
            self.model_id = model_id

        def reconstruct(self, paths):
            assert [p.name for p in paths] == [f"{i:04d}.png" for i in range(len(views))]
            return reconstruction

    monkeypatch.setattr(multiview_vqa, "VGGTBackend", FakeVGGT)
    args = multiview_vqa.MultiviewVQAArguments(
        source="frames",
        input_dir=str(folder),
        num_frames=8,
        output_dir=str(tmp_path / "out"),
        view_mix="2:1",
        min_yield=0.0,
    )
    manifest = multiview_vqa.build(args)
    rows = load_dataset(str(tmp_path / "out"), split="train")
    assert len(rows) == manifest["built"] > 0
    for row in rows:
        assert row["provenance"]["metric_depth"] is False and row["provenance"]["source"] == "frames"
        assert [t["kind"] for t in row["turns"]] == ["closer_view", "false_premise", "multiple_choice_closer_view"]
        assert all(t["value"] is None for t in row["turns"])
        # Which view sees point 3 closer does not depend on scale: check it with the exact, metric views.
        frames = row["provenance"]["frames"]
        (_, u, v) = row["turns"][0]["points"][0]
        world = views[frames[0]].world_points(np.array([u]), np.array([v]))[0]
        depths = [views[f].camera_points(world[None])[0, 2] for f in (frames[0], frames[-1])]
        assert row["turns"][0]["answer"] == ("view 1" if depths[0] < depths[1] else f"view {len(frames)}")


def test_frames_source_without_vggt_is_a_clear_error(tmp_path):
    if importlib.util.find_spec("vggt") is not None:
        pytest.skip("vggt is installed here")
    (tmp_path / "frames").mkdir()
    args = multiview_vqa.MultiviewVQAArguments(source="frames", input_dir=str(tmp_path / "frames"), output_dir="x")
    with pytest.raises(RuntimeError, match="vggt"):
        multiview_vqa.MultiviewVQABuilder(args, Thresholds())
