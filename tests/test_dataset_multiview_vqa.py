"""Multi-view VQA builder: view selection, cross-view answers against scene geometry, layout, Redwood, bad input."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import shutil

import numpy as np
import pytest
from datasets import load_dataset
from PIL import Image

from dataset_builders import publishing
from dataset_builders.frames import SkipReason, SkipSample
from dataset_builders.multiview_vqa import (
    FEATURES,
    OPTION_LETTERS,
    MultiviewVQAArguments,
    MultiviewVQABuilder,
    build,
    choose_points,
    main,
    write_questions,
)
from dataset_builders.questions import format_distance
from dataset_builders.spatial import Thresholds
from dataset_builders.views import (
    LpipsScorer,
    SelectionThresholds,
    SyntheticSequence,
    covisibility,
    read_trajectory_log,
    views_for_index,
)
from tests.dataset_fixtures import RGBD_DIR


REDWOOD = RGBD_DIR / "redwood"
SIZE = (320, 240)
NUMBER = re.compile(r"-?\d+\.\d+")
# The Redwood camera moves 2.5 cm a frame, sideways: depths of one point differ by centimetres between anchors.
REDWOOD_THRESHOLDS = Thresholds(depth_margin_m=0.01, depth_margin_fraction=0.0)


def _args(tmp_path, **overrides) -> MultiviewVQAArguments:
    values = dict(
        num_samples=8,
        image_width=SIZE[0],
        image_height=SIZE[1],
        output_dir=str(tmp_path / "out"),
        samples_per_chunk=4,
        view_mix="2:1,4:1,8:1",
        min_yield=0.0,
    )
    return MultiviewVQAArguments(**{**values, **overrides})


@functools.lru_cache(maxsize=1)
def _synthetic_rows() -> tuple:
    """(builder, rows by index, skips) for 12 synthetic samples over all three view counts."""
    args = MultiviewVQAArguments(
        num_samples=12, image_width=SIZE[0], image_height=SIZE[1], view_mix="2:1,4:1,8:1", output_dir="unused"
    )
    builder = MultiviewVQABuilder(args, Thresholds())
    rows, skips = {}, []
    for index in range(args.num_samples):
        try:
            rows[index] = builder.example(index)
        except SkipSample as skip:
            skips.append(skip.reason)
    return builder, rows, skips


def _ray_point(pose: np.ndarray, k: dict, u: int, v: int, depth: float) -> np.ndarray:
    """World point of pixel (u, v) at optical-axis depth `depth`, written out independently of the builder."""
    ray = np.array([(u - k["cx"]) / k["fx"], (v - k["cy"]) / k["fy"], 1.0])
    return pose[:3, :3] @ ray * depth + pose[:3, 3]


def test_view_mix_follows_the_paper_proportions():
    counts = np.bincount([views_for_index(i, {2: 160, 4: 30, 8: 10}) for i in range(2000)], minlength=9)
    assert abs(counts[2] / 2000 - 0.8) < 0.01 and abs(counts[4] / 2000 - 0.15) < 0.01
    assert abs(counts[8] / 2000 - 0.05) < 0.01
    assert {views_for_index(i, {4: 1}) for i in range(50)} == {4}
    with pytest.raises(ValueError, match="--view-mix"):
        MultiviewVQAArguments(num_samples=1, view_mix="3:1")


def test_covisibility_agrees_with_instance_identity_across_views():
    """Points the visibility test calls seen in another view hit the same object there (rendered instance ids)."""
    sequence = SyntheticSequence.generate(7, 12, SIZE, (8, 12))
    selection = SelectionThresholds()
    rng = np.random.default_rng(0)
    a, b = sequence.view(0), sequence.view(6)
    assert covisibility(a, a, selection, rng) > 0.99
    values = [covisibility(a, sequence.view(k), selection, rng) for k in (1, 6, 11)]
    assert values[0] > values[1] > values[2]
    ids_a, ids_b = sequence.scene.render(0).instances, sequence.scene.render(6).instances
    vs, us = np.divmod(rng.choice(ids_a.size, 4000, replace=False), SIZE[0])
    seen = b.sees(a.world_points(us, vs), selection)
    camera = b.camera_points(a.world_points(us[seen], vs[seen]))
    col = np.round(b.intrinsics.fx * camera[:, 0] / camera[:, 2] + b.intrinsics.cx).astype(int)
    row = np.round(b.intrinsics.fy * camera[:, 1] / camera[:, 2] + b.intrinsics.cy).astype(int)
    assert seen.mean() > 0.3
    assert (ids_a[vs[seen], us[seen]] == ids_b[row, col]).mean() > 0.97


def test_every_cross_view_answer_matches_scene_geometry():
    builder, rows, skips = _synthetic_rows()
    assert len(rows) >= 9, skips
    assert {row["provenance"]["num_views"] for row in rows.values()} == {2, 4, 8}
    for index, row in rows.items():
        sequence, _ = builder.source.load(index)
        scene = sequence.scene
        prov = row["provenance"]
        frames = prov["frames"]
        assert frames[0] == 0 and frames == sorted(set(frames)) and len(frames) == prov["num_views"]
        assert 0.3 <= prov["anchor_covisibility"] <= 0.8
        renders = [scene.render(f) for f in frames]
        for pose, flat in zip((scene.poses[f] for f in frames), prov["camera_to_world"], strict=True):
            np.testing.assert_allclose(np.reshape(flat, (4, 4)), pose)
        k = prov["intrinsics"][0]
        by_kind = {turn["kind"]: turn for turn in row["turns"]}
        # Every marked point: its world point is the analytic ray-cast surface point of that pixel.
        for turn in row["turns"]:
            for (view, u, v), world in zip(turn["points"], turn["world_points"], strict=True):
                depth = renders[view - 1].depth[v, u]
                np.testing.assert_allclose(world, _ray_point(scene.poses[frames[view - 1]], k, u, v, depth), atol=1e-4)
        for kind in ("cross_view_distance", "multiple_choice_distance"):
            turn = by_kind[kind]
            distance = float(np.linalg.norm(np.subtract(*turn["world_points"])))
            assert turn["value"] == pytest.approx(distance, abs=1e-9)
            assert turn["points"][0][0] != turn["points"][1][0]  # the two points are in different views
        # Point 3: visible in every view (same object id where it projects), closer view from the poses.
        p3 = np.array(by_kind["closer_view"]["world_points"][0])
        (_, u3, v3) = by_kind["closer_view"]["points"][0]
        object_id = renders[0].instances[v3, u3]
        depths = []
        for frame, render in zip(frames, renders, strict=True):
            pose = scene.poses[frame]
            camera = pose[:3, :3].T @ (p3 - pose[:3, 3])
            u, v = k["fx"] * camera[0] / camera[2] + k["cx"], k["fy"] * camera[1] / camera[2] + k["cy"]
            assert 0 <= round(u) < SIZE[0] and 0 <= round(v) < SIZE[1]
            assert render.instances[round(v), round(u)] == object_id
            assert abs(render.depth[round(v), round(u)] - camera[2]) < 0.05 * camera[2]
            depths.append(camera[2])
        last = len(frames)
        closer = 1 if depths[0] < depths[-1] else last
        assert by_kind["closer_view"]["answer"] == f"view {closer}"
        assert by_kind["closer_view"]["value"] == pytest.approx(min(depths[0], depths[-1]), abs=1e-6)
        premise = by_kind["false_premise"]
        wrong = last if closer == 1 else 1
        assert premise["question_type"] == "adversarial" and premise["answer"] == "false_premise"
        text = next(m for m in row["messages"][1::2] if m["content"][0]["text"].startswith("That premise is false"))
        assert f"closer in view {closer}" in text["content"][0]["text"]
        assert f"closer to the camera in view {wrong} than" in row["messages"][4]["content"][0]["text"]
        assert premise["value"] == pytest.approx(abs(depths[0] - depths[-1]), abs=1e-6)
        # Multiple choice: the true option sits at `correct_option`, options are ascending and far apart.
        choice = by_kind["multiple_choice_distance"]
        assert choice["options"][choice["correct_option"]] == format_distance(choice["value"])[0]
        assert choice["answer"] == OPTION_LETTERS[choice["correct_option"]] and choice["correct_option"] == index % 4
        numbers = [float(o.split()[0]) * (0.01 if o.endswith("cm") else 1.0) for o in choice["options"]]
        assert numbers == sorted(numbers) and min(np.diff(numbers) / np.array(numbers[:-1])) > 0.2
        # The texts state the values of the structured truth.
        answer_text = row["messages"][1]["content"][0]["text"]
        shown = float(NUMBER.findall(answer_text)[0])
        assert shown * (0.01 if "cm" in answer_text else 1) == pytest.approx(
            by_kind["cross_view_distance"]["value"], abs=6e-4
        )


def test_messages_reference_every_view_in_order():
    _, rows, _ = _synthetic_rows()
    for row in rows.values():
        first = row["messages"][0]["content"]
        assert [c["type"] for c in first] == ["image"] * len(row["images"]) + ["text"]
        assert sum(c["type"] == "image" for m in row["messages"] for c in m["content"]) == len(row["images"])
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"] * 4
        assert {t["question_type"] for t in row["turns"]} == {"common", "adversarial", "multiple_choice"}
        FEATURES.encode_example(row)


def test_expanded_sample_dropped_when_a_middle_view_hides_the_point():
    builder, rows, _ = _synthetic_rows()
    index = next(i for i, row in rows.items() if row["provenance"]["num_views"] == 4)
    sequence, _ = builder.source.load(index)
    frames = rows[index]["provenance"]["frames"]
    views = [sequence.view(f) for f in frames]
    rng = np.random.default_rng([0, index, 1])
    points = choose_points((views[0], views[-1]), Thresholds(), SelectionThresholds(), rng, 12, 3)
    write_questions(points, views, SelectionThresholds(), rng, 0)  # holds as built
    # A wall 0.3 m in front of a middle camera hides everything behind it.
    views[1] = dataclasses.replace(views[1], depth=np.full_like(views[1].depth, 0.3))
    with pytest.raises(SkipSample) as caught:
        write_questions(points, views, SelectionThresholds(), rng, 0)
    assert caught.value.reason is SkipReason.EXPANSION_INVALID


def test_without_metric_scale_nothing_absolute_is_asked():
    builder, rows, _ = _synthetic_rows()
    index = next(iter(rows))
    sequence, _ = builder.source.load(index)
    views = [sequence.view(f) for f in rows[index]["provenance"]["frames"]]
    last = len(views) - 1
    for option in (0, 1):
        rng = np.random.default_rng([0, index, 1])
        points = choose_points((views[0], views[-1]), Thresholds(), SelectionThresholds(), rng, 12, last)
        questions = write_questions(points, views, SelectionThresholds(), rng, option, is_metric=False)
        assert [q.question_type for q in questions] == ["common", "adversarial", "multiple_choice"]
        assert all(q.value is None and not NUMBER.search(q.answer_text) for q in questions)
        assert not any("distance" in q.kind for q in questions)
        depths = [v.camera_points(points[2].world[None])[0, 2] for v in (views[0], views[-1])]
        closer = "view 1" if depths[0] < depths[1] else f"view {last + 1}"
        choice = questions[2]
        assert choice.correct_option == option and choice.options[option] == closer
        assert questions[0].answer_text.startswith(closer.capitalize())


def test_build_layout_round_trip_and_resume(tmp_path):
    args = _args(tmp_path)
    manifest = build(args)
    assert manifest["attempted"] == 8 and manifest["built"] + sum(manifest["skipped"].values()) == 8
    ds = load_dataset(args.output_dir, split="train")
    assert len(ds) == manifest["built"] > 0
    for row in ds:
        assert len(row["images"]) == row["provenance"]["num_views"] == len(row["provenance"]["frames"])
        assert all(image.size == SIZE for image in row["images"])
    card = (tmp_path / "out" / "README.md").read_text()
    assert "spatialboost-build-multiview-vqa" in card and "`provenance`" in card and "license: cc-by-4.0" in card
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "data").iterdir()}
    again = build(args)
    assert again["built"] == manifest["built"]
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / "out" / "data").iterdir()}
    with pytest.raises(ValueError, match="other settings"):
        build(_args(tmp_path, seed=1))


def _redwood_args(tmp_path, root=REDWOOD, **overrides) -> MultiviewVQAArguments:
    values = dict(
        source="posed_rgbd",
        input_dir=str(root),
        output_dir=str(tmp_path / "redwood-out"),
        min_covisibility=0.9,
        max_covisibility=1.0,
        view_mix="2:1,4:1",
        min_yield=0.0,
    )
    return MultiviewVQAArguments(**{**values, **overrides})


def test_redwood_sequence_end_to_end_with_its_poses(tmp_path):
    manifest = build(_redwood_args(tmp_path), REDWOOD_THRESHOLDS)
    assert manifest["built"] >= 2, manifest
    poses = read_trajectory_log(REDWOOD / "trajectory.log")
    depths = [np.asarray(Image.open(p), dtype=np.float64) / 1000 for p in sorted((REDWOOD / "depth").glob("*.png"))]
    k = {"fx": 525.0, "fy": 525.0, "cx": 319.5, "cy": 239.5}
    for row in load_dataset(str(tmp_path / "redwood-out"), split="train"):
        frames = row["provenance"]["frames"]
        assert row["provenance"]["source"] == "posed_rgbd" and row["provenance"]["anchor_covisibility"] >= 0.9
        for frame, flat in zip(frames, row["provenance"]["camera_to_world"], strict=True):
            np.testing.assert_allclose(np.reshape(flat, (4, 4)), poses[frame])
        for turn in row["turns"]:
            for (view, u, v), world in zip(turn["points"], turn["world_points"], strict=True):
                frame = frames[view - 1]
                expected = _ray_point(poses[frame], k, u, v, depths[frame][v, u])
                np.testing.assert_allclose(world, expected, atol=1e-5)
        closer = next(t for t in row["turns"] if t["kind"] == "closer_view")
        p3 = np.array(closer["world_points"][0])
        z = [(np.linalg.inv(poses[f]) @ [*p3, 1.0])[2] for f in (frames[0], frames[-1])]
        assert closer["answer"] == ("view 1" if z[0] < z[1] else f"view {len(frames)}")
        # Seen by the last anchor: the sensor depth where point 3 projects agrees with its depth there.
        camera = (np.linalg.inv(poses[frames[-1]]) @ [*p3, 1.0])[:3]
        u = round(k["fx"] * camera[0] / camera[2] + k["cx"])
        v = round(k["fy"] * camera[1] / camera[2] + k["cy"])
        assert abs(depths[frames[-1]][v, u] - camera[2]) < 0.05 * camera[2]


def test_redwood_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    main(
        [
            "--source",
            "posed_rgbd",
            "--input-dir",
            str(REDWOOD),
            "--output-dir",
            str(out),
            "--min-covisibility",
            "0.9",
            "--max-covisibility",
            "1.0",
            "--depth-margin-m",
            "0.01",
            "--depth-margin-fraction",
            "0",
            "--view-mix",
            "2:1",
        ]
    )
    assert "built 4 of 4 samples" in capsys.readouterr().out
    assert len(load_dataset(str(out), split="train")) == 4


def test_scannet_layout_gives_the_same_rows_and_skips_lost_tracking(tmp_path):
    """The Redwood frames rewritten as a ScanNet export (unpadded names, pose/N.txt, -inf for lost tracking)."""
    root = tmp_path / "scene0000_00"
    for sub in ("color", "depth", "pose", "intrinsic"):
        (root / sub).mkdir(parents=True)
    poses = read_trajectory_log(REDWOOD / "trajectory.log")
    for i, pose in enumerate(poses):
        shutil.copy(REDWOOD / "color" / f"{i:05d}.jpg", root / "color" / f"{i}.jpg")
        shutil.copy(REDWOOD / "depth" / f"{i:05d}.png", root / "depth" / f"{i}.png")
        np.savetxt(root / "pose" / f"{i}.txt", pose)
    np.savetxt(
        root / "intrinsic" / "intrinsic_depth.txt",
        [[525, 0, 319.5, 0], [0, 525, 239.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
    )
    scannet = build(
        _redwood_args(tmp_path, root, output_dir=str(tmp_path / "s"), rgbd_layout="scannet"), REDWOOD_THRESHOLDS
    )
    redwood = build(_redwood_args(tmp_path, output_dir=str(tmp_path / "r")), REDWOOD_THRESHOLDS)
    assert scannet["built"] == redwood["built"] > 0
    a, b = (load_dataset(str(tmp_path / name), split="train") for name in ("s", "r"))
    assert [row["turns"] for row in a] == [row["turns"] for row in b]
    np.savetxt(root / "pose" / "4.txt", np.full((4, 4), -np.inf))
    lost = build(
        _redwood_args(tmp_path, root, output_dir=str(tmp_path / "lost"), rgbd_layout="scannet", view_mix="2:1"),
        REDWOOD_THRESHOLDS,
    )
    assert lost["skipped"].get(SkipReason.DEGENERATE_POSE.value, 0) >= 1


def _copy_redwood(tmp_path):
    root = tmp_path / "redwood"
    shutil.copytree(REDWOOD, root)
    return root


def _skips(tmp_path, root, **overrides) -> dict:
    return build(_redwood_args(tmp_path, root, output_dir=str(tmp_path / "bad-out"), **overrides), REDWOOD_THRESHOLDS)[
        "skipped"
    ]


def test_missing_view_is_skipped_with_its_reason(tmp_path):
    root = _copy_redwood(tmp_path)
    (root / "depth" / "00004.png").unlink()
    skipped = _skips(tmp_path, root, view_mix="2:1")
    assert skipped.get(SkipReason.MISSING_VIEW.value, 0) >= 1


def test_mismatched_sizes_are_skipped_with_their_reasons(tmp_path):
    root = _copy_redwood(tmp_path)
    Image.open(root / "color" / "00003.jpg").resize((320, 240)).save(root / "color" / "00003.jpg")
    assert SkipReason.DEPTH_SHAPE_MISMATCH.value in _skips(tmp_path, root, view_mix="2:1")
    root2 = tmp_path / "resized"
    shutil.copytree(REDWOOD, root2)
    for name in ("00003", "00004"):
        Image.open(root2 / "color" / f"{name}.jpg").resize((320, 240)).save(root2 / "color" / f"{name}.jpg")
        depth = Image.open(root2 / "depth" / f"{name}.png")
        depth.resize((320, 240), Image.NEAREST).save(root2 / "depth" / f"{name}.png")
    shutil.rmtree(tmp_path / "bad-out")
    assert SkipReason.VIEW_SIZE_MISMATCH.value in _skips(tmp_path, root2, view_mix="2:1")


def test_degenerate_pose_and_no_overlap_are_skipped(tmp_path):
    poses = read_trajectory_log(REDWOOD / "trajectory.log")

    def write(root, changed):
        lines = []
        for i, pose in enumerate(changed):
            lines.append(f"{i} {i} {i + 1}")
            lines += [" ".join(str(x) for x in row) for row in pose]
        (root / "trajectory.log").write_text("\n".join(lines) + "\n")

    root = _copy_redwood(tmp_path)
    scaled = [p.copy() for p in poses]
    scaled[4][:3, :3] *= 2.0
    write(root, scaled)
    assert SkipReason.DEGENERATE_POSE.value in _skips(tmp_path, root, view_mix="2:1")

    root2 = tmp_path / "away"
    shutil.copytree(REDWOOD, root2)
    turned = [p.copy() for p in poses]
    for pose in turned[1:]:  # every later camera looks the other way, 20 m off
        pose[:3, :3] = pose[:3, :3] @ np.diag([-1.0, 1.0, -1.0])
        pose[:3, 3] += 20.0
    write(root2, turned)
    shutil.rmtree(tmp_path / "bad-out")
    skipped = _skips(tmp_path, root2, view_mix="2:1", num_samples=1)
    assert skipped == {SkipReason.NO_OVERLAP.value: 1}


def test_lpips_unavailable_gives_a_clear_message():
    # Where the package and its weights exist this test has nothing to check.
    try:
        LpipsScorer()
    except RuntimeError as error:
        assert "--selection covisibility" in str(error)
    else:
        pytest.skip("lpips and its backbone weights are available here")


def test_manifest_counts_views(tmp_path):
    manifest = build(_args(tmp_path, num_samples=4))
    stored = json.loads((tmp_path / "out" / "manifests" / "shard-000-of-001.json").read_text())
    assert sum(stored["views"].values()) == stored["built"] == manifest["built"]


@pytest.mark.slow
def test_worker_processes_give_the_same_rows(tmp_path):
    one = _args(tmp_path, output_dir=str(tmp_path / "one"), num_samples=6, samples_per_chunk=2)
    two = _args(tmp_path, output_dir=str(tmp_path / "two"), num_samples=6, samples_per_chunk=2, num_proc=2)
    build(one)
    build(two)
    rows = [load_dataset(str(tmp_path / name), split="train") for name in ("one", "two")]
    assert len(rows[0]) == len(rows[1]) > 0
    for a, b in zip(*rows, strict=True):
        assert a["messages"] == b["messages"] and a["provenance"] == b["provenance"]


def test_push_to_hub_uploads_the_build_directory(tmp_path, monkeypatch):
    calls = []

    class StubApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))

        def upload_folder(self, **kwargs):
            calls.append(("upload_folder", kwargs))
            return "https://hub/commit/1"

    monkeypatch.setattr(publishing, "HfApi", StubApi)
    build(_args(tmp_path, num_samples=2, push_to_hub="org/mv", private=True))
    (_, repo, created), (_, upload) = calls
    assert repo == "org/mv" and created == {"repo_type": "dataset", "private": True, "exist_ok": True}
    assert upload["folder_path"] == str(tmp_path / "out") and upload["repo_type"] == "dataset"
    assert upload["allow_patterns"] == publishing.UPLOAD_PATTERNS and "multi-view VQA" in upload["commit_message"]
