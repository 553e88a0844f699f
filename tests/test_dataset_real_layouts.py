"""Real RGB-D layouts in, correct 3D out: the annotated SUN RGB-D frames of ../shared/data/annotated (with their 3D
boxes), the official SUN RGB-D and ScanNet layouts (small fixtures written here from those frames and from the
Redwood sequence), object cleaning on real holey depth, the gravity estimate against the datasets' own up vectors,
and streaming view selection."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from dataset_fixtures import RGBD_DIR, assistant_texts
from datasets import load_dataset
from PIL import Image
from scipy import ndimage

from dataset_builders.frames import SkipReason, SkipSample
from dataset_builders.geometry import (
    GravityFrame,
    Intrinsics,
    angle_deg,
    connected_parts,
    depth_edges,
    discontinuities,
    erode_mask,
    unproject,
)
from dataset_builders.multiturn import MultiturnArguments, build
from dataset_builders.multiview_vqa import MultiviewVQAArguments
from dataset_builders.multiview_vqa import build as build_multiview
from dataset_builders.sources import AnnotatedRGBDSource, ScanNetFrameSource, SunRGBDSource, sun_up_camera
from dataset_builders.spatial import Thresholds, analyse, object_points
from dataset_builders.views import (
    PosedRGBDSequence,
    SelectionThresholds,
    SyntheticSequence,
    read_trajectory_log,
    select_views,
)


ANNOTATED = RGBD_DIR.parent / "annotated"
REDWOOD = RGBD_DIR / "redwood"
RELATION_AXIS = {"left_right": 0, "front_behind": 1, "above_below": 2}


def _annotated_frame(name: str) -> dict:
    folder = ANNOTATED / "sunrgbd" / name
    return {
        "folder": folder,
        "camera": json.loads((folder / "camera.json").read_text()),
        "boxes": {o["id"]: o for o in json.loads((folder / "objects.json").read_text())},
        "depth_mm": np.asarray(Image.open(folder / "depth.png")).astype(np.int64),
        "ids": np.asarray(Image.open(folder / "instances.png")).astype(np.int64),
    }


def test_annotated_layout_reads_intrinsics_masks_names_and_up_per_frame():
    source = AnnotatedRGBDSource(ANNOTATED, Thresholds())
    assert [str(f.relative_to(ANNOTATED)) for f in source.folders] == ["sunrgbd/000001", "sunrgbd/000017"]
    for index, name in enumerate(("000001", "000017")):
        truth = _annotated_frame(name)
        frame = source.load(index)
        k = truth["camera"]
        assert (frame.intrinsics.fx, frame.intrinsics.cx, frame.intrinsics.cy) == (k["fx"], k["cx"], k["cy"])
        np.testing.assert_allclose(frame.up_camera, np.array(k["up_camera"]) / np.linalg.norm(k["up_camera"]))
        assert frame.up_origin == "annotated:up_camera" and frame.instances_origin == "given"
        valid = truth["depth_mm"] > 0
        np.testing.assert_array_equal(np.isfinite(frame.depth), valid)
        np.testing.assert_allclose(frame.depth[valid], truth["depth_mm"][valid] / 1000.0, rtol=1e-6)
        assert {inst.instance_id for inst in frame.instances} == set(truth["boxes"])
        for inst in frame.instances:
            np.testing.assert_array_equal(inst.mask, truth["ids"] == inst.instance_id)
            assert inst.category == truth["boxes"][inst.instance_id]["category"].replace("_", " ")


def test_annotated_frames_through_the_cli_with_given_masks_and_no_segmenter(tmp_path):
    out = tmp_path / "annotated"
    args = MultiturnArguments(
        source="rgbd",
        rgbd_layout="annotated",
        input_dir=str(ANNOTATED),
        output_dir=str(out),
        segmenter_model=str(tmp_path / "no-such-model"),  # never loaded: the frames carry their masks
        min_yield=1.0,
    )
    manifest = build(args)
    assert manifest["built"] == 2 and manifest["backends"] == []
    rows = load_dataset(str(out), split="train")
    relations = 0
    for row in rows:
        provenance = row["provenance"]
        truth = _annotated_frame(provenance["sample_id"].split("/")[-1])
        assert provenance["gravity_source"] == "given:annotated:up_camera" and provenance["gravity_aligned"]
        assert provenance["instances_origin"] == "given" and provenance["tolerances"]["depth_origin"] == "sensor"
        assert provenance["intrinsics"]["cx"] == truth["camera"]["cx"]
        assert provenance["sparse_depth"] == (provenance["sample_id"].endswith("000017"))
        true_frame = GravityFrame.from_up(np.array(truth["camera"]["up_camera"]))
        ids = sorted(truth["boxes"])  # instances are listed in id order
        for turn, text in zip(row["turns"], assistant_texts(row), strict=True):
            if turn["kind"] == "absolute_depth":
                ((u, v),) = turn["points"]
                assert turn["answer"] == f"{truth['depth_mm'][v, u] / 1000:.3f}" and turn["answer"] in text
            if turn["kind"] in RELATION_AXIS:
                first, second = (np.array(truth["boxes"][ids[i]]["center_camera"]) for i in turn["object_ids"])
                true_offset = true_frame.to_answer((first - second)[None])[0, RELATION_AXIS[turn["kind"]]]
                # Asserted only where the true boxes are apart by more than the near-tie margin, and the same way.
                assert np.sign(turn["value"]) == np.sign(true_offset)
                assert abs(true_offset) >= provenance["tolerances"]["relation_margin_m"]
                relations += 1
    assert relations >= 2


def test_cleaning_keeps_the_whole_object_on_real_holey_depth_and_drops_flying_pixels_and_far_outliers():
    truth = _annotated_frame("000001")
    source = AnnotatedRGBDSource(ANNOTATED, Thresholds())
    frame = source.load(0)
    thresholds = Thresholds(max_points_per_object=10**6)
    mirror = next(inst for inst in frame.instances if inst.category == "dresser mirror")
    box = truth["boxes"][mirror.instance_id]
    answer = GravityFrame.from_up(frame.up_camera)
    depth = frame.depth.copy()
    core = erode_mask(mirror.mask, 1) & np.isfinite(depth) & ~discontinuities(depth, thresholds.depth_edge_jump)
    # The old cleaning: the largest 4-connected pixel region left after depth edges (holes counted as edges).
    labels, _ = ndimage.label(erode_mask(mirror.mask, 1) & ~depth_edges(depth, thresholds.depth_edge_jump))
    largest = labels == np.bincount(labels.ravel())[1:].argmax() + 1
    heading = answer.to_answer(np.array(box["heading_camera"])[None])[0]
    across = np.cross([0.0, 0.0, 1.0], heading)  # the box's second size axis, horizontal

    def extent(mask):
        vs, us = np.nonzero(mask)
        points = answer.to_answer(unproject(us.astype(float), vs.astype(float), depth[vs, us], frame.intrinsics))
        return np.ptp(points @ across)

    # The real frame: sensor holes split the mirror and the dresser under it into pieces on the pixel grid; the
    # largest one spans under half of the box's 1.95 m, the kept parts span most of it.
    kept = object_points(core, (0, 0), depth, frame.intrinsics, thresholds, np.random.default_rng(0))
    kept_extent = np.ptp(answer.to_answer(kept) @ across)
    assert extent(largest) < 0.5 * box["size"][1] and kept_extent > 0.85 * box["size"][1]
    vs, us = np.nonzero(core)
    all_points = unproject(us.astype(float), vs.astype(float), depth[vs, us], frame.intrinsics)
    assert connected_parts(all_points, thresholds.part_gap_m, thresholds.min_part_share).mean() >= 0.97
    # Far outliers (readings 1.5 m behind, 1 % of the object) and flying pixels along its outline (halfway to the
    # background) are dropped; the object stays as it was.
    rng = np.random.default_rng(1)
    vs, us = np.nonzero(core)
    far = rng.choice(len(vs), size=len(vs) // 100, replace=False)
    corrupted = depth.copy()
    corrupted[vs[far], us[far]] += 1.5
    filled = ndimage.binary_fill_holes(mirror.mask)
    outline = filled & ~ndimage.binary_erosion(filled) & mirror.mask & np.isfinite(depth)
    corrupted[outline] = 0.5 * (corrupted[outline] + 6.0)
    core2 = erode_mask(mirror.mask, 1) & np.isfinite(corrupted) & ~discontinuities(corrupted, 0.05)
    v2, u2 = np.nonzero(core2)
    points2 = unproject(u2.astype(float), v2.astype(float), corrupted[v2, u2], frame.intrinsics)
    kept2 = connected_parts(points2, thresholds.part_gap_m, thresholds.min_part_share)
    was_far = np.isin(v2 * depth.shape[1] + u2, vs[far] * depth.shape[1] + us[far])
    assert not kept2[was_far].any() and not (outline & core2).any()  # outliers and flying pixels gone
    assert kept2[~was_far].mean() >= 0.97  # the object stays
    cleaned = object_points(core2, (0, 0), corrupted, frame.intrinsics, thresholds, np.random.default_rng(0))
    assert np.ptp(answer.to_answer(cleaned) @ across) > 0.85 * box["size"][1]


@pytest.mark.parametrize("index", [0, 1])
def test_gravity_estimate_on_real_frames_matches_their_up_vector(index):
    """The estimation path (up vector removed), on dense and on sparse real depth: trusted and within 3 degrees."""
    frame = AnnotatedRGBDSource(ANNOTATED, Thresholds(), use_up_vector=False).load(index)
    truth = _annotated_frame(("000001", "000017")[index])["camera"]["up_camera"]
    for seed in range(3):
        scene = analyse(frame, Thresholds(), np.random.default_rng(seed))
        assert scene.gravity.source == "estimated" and scene.frame.aligned and scene.gravity.confidence >= 0.9
        assert angle_deg(scene.frame.rotation[2], np.array(truth)) < 3.0


# --- The official SUN RGB-D layout -----------------------------------------------------------------------------


def _sun_encode(depth_mm: np.ndarray) -> np.ndarray:
    """SUN RGB-D's depth PNG: millimetres rotated left by 3 bits (the toolbox rotates them back)."""
    value = depth_mm.astype(np.uint32)
    return (((value << 3) | (value >> 13)) & 0xFFFF).astype(np.uint16)


def _block_polygons(mask: np.ndarray, block: int = 4) -> list[tuple[list[int], list[int]]]:
    """A mask as an annotator's polygons: runs of 4x4 blocks that are mostly inside it, one rectangle per run
    (SUN RGB-D objects may have several polygons)."""
    height, width = mask.shape
    cells = mask[: height // block * block, : width // block * block]
    cells = cells.reshape(height // block, block, width // block, block).mean(axis=(1, 3)) >= 0.5
    polygons = []
    for row in range(cells.shape[0]):
        columns = np.flatnonzero(cells[row])
        for run in np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1):
            if len(run):
                x0, x1, y0, y1 = run[0] * block, (run[-1] + 1) * block - 1, row * block, (row + 1) * block - 1
                polygons.append(([int(x0), int(x1), int(x1), int(x0)], [int(y0), int(y0), int(y1), int(y1)]))
    return polygons


def _write_sun_frame(root: Path, name: str) -> dict:
    """An official-layout SUN RGB-D frame folder made from an annotated frame: the toolbox's file formats."""
    truth = _annotated_frame(name)
    folder = root / "kv2" / "kinect2data" / name
    for sub in ("image", "depth", "depth_bfx", "extrinsics", "annotation2Dfinal"):
        (folder / sub).mkdir(parents=True)
    shutil.copy(truth["folder"] / "color.jpg", folder / "image" / f"{name}.jpg")
    Image.fromarray(_sun_encode(truth["depth_mm"])).save(folder / "depth" / f"{name}.png")
    Image.fromarray(_sun_encode(np.maximum(truth["depth_mm"], 1))).save(folder / "depth_bfx" / f"{name}.png")
    k = truth["camera"]
    # MATLAB's 1-based pixel grid: the principal point is one more than on the 0-based grid.
    (folder / "intrinsics.txt").write_text(f"{k['fx']} 0 {k['cx'] + 1}\n0 {k['fy']} {k['cy'] + 1}\n0 0 1\n")
    axes = GravityFrame.from_up(np.array(k["up_camera"])).rotation
    extrinsics = np.hstack([np.stack([axes[0], -axes[2], axes[1]]), np.zeros((3, 1))])  # [E | 0], E p = (x, -z, y)
    np.savetxt(folder / "extrinsics" / "20140101000000.txt", np.eye(3, 4))  # an older one: the last file counts
    np.savetxt(folder / "extrinsics" / "20150118235401.txt", extrinsics)
    objects, polygons = [{"name": "wall"}], []
    height = truth["ids"].shape[0]
    polygons.append({"x": [0, 729, 729, 0], "y": [0, 0, 40, 40], "object": 0})  # a wall strip, not an object
    for object_id, box in sorted(truth["boxes"].items()):
        objects.append({"name": f"{box['category']}:1" if object_id == 2 else box["category"]})
        for xs, ys in _block_polygons(truth["ids"] == object_id):
            polygons.append({"x": xs, "y": ys, "object": len(objects) - 1})
    annotation = {"name": name, "frames": [{"polygon": polygons}], "objects": objects, "height": height}
    (folder / "annotation2Dfinal" / "index.json").write_text(json.dumps(annotation))
    return {**truth, "folder": folder}


def test_sunrgbd_release_layout_reads_its_own_formats(tmp_path):
    root = tmp_path / "SUNRGBD"
    written = _write_sun_frame(root, "000001")
    frame = SunRGBDSource(root, Thresholds()).load(0)
    k = written["camera"]
    assert (frame.intrinsics.fx, frame.intrinsics.cx, frame.intrinsics.cy) == (k["fx"], k["cx"], k["cy"])
    np.testing.assert_allclose(frame.up_camera, np.array(k["up_camera"]) / np.linalg.norm(k["up_camera"]), atol=1e-6)
    assert frame.up_origin == "sunrgbd:extrinsics" and frame.depth_origin == "sensor"
    valid = written["depth_mm"] > 0
    np.testing.assert_allclose(frame.depth[valid], written["depth_mm"][valid] / 1000.0, rtol=1e-6)
    assert not np.isfinite(frame.depth[~valid]).any()
    names = sorted(inst.category for inst in frame.instances)
    assert names == sorted(b["category"].replace("_", " ") for b in written["boxes"].values())  # no wall
    # Each mask is its polygons: the 4x4 blocks mostly inside the object's annotated pixels.
    for inst in frame.instances:
        object_id = next(i for i, b in written["boxes"].items() if b["category"].replace("_", " ") == inst.category)
        annotated = written["ids"] == object_id
        share = 0.8 if annotated.sum() > 5000 else 0.3  # small, scattered masks lose more to the blocks
        assert (inst.mask & annotated).sum() > share * annotated.sum()
    assert SunRGBDSource(root, Thresholds(), depth_folder="depth_bfx").load(0).depth[~valid].min() == 0.001
    assert SunRGBDSource(root, Thresholds(), use_up_vector=False).load(0).up_camera is None


def test_sunrgbd_layout_builds_and_skips_bad_frames_with_their_reasons(tmp_path):
    root = tmp_path / "SUNRGBD"
    _write_sun_frame(root, "000001")
    broken = _write_sun_frame(root / "bad", "000001")["folder"]
    (broken / "annotation2Dfinal" / "index.json").write_text('{"frames": [{"polygon": [')  # a known SUN typo
    missing = _write_sun_frame(root / "missing", "000001")["folder"]
    shutil.rmtree(missing / "extrinsics")
    args = MultiturnArguments(
        source="rgbd", rgbd_layout="sunrgbd", input_dir=str(root), output_dir=str(tmp_path / "out"), min_yield=0.0
    )
    manifest = build(args)
    assert manifest["built"] == 1 and manifest["attempted"] == 3
    assert manifest["skipped"] == {SkipReason.CORRUPT_ANNOTATION.value: 1, SkipReason.MISSING_FILE.value: 1}
    row = load_dataset(str(tmp_path / "out"), split="train")[0]
    assert row["provenance"]["gravity_source"] == "given:sunrgbd:extrinsics"
    assert row["provenance"]["sample_id"] == "kv2/kinect2data/000001"


def test_sun_up_vector_from_the_toolbox_rotation():
    # readframeSUNRGBD.m: Rtilt = P E P^T, P = [1 0 0; 0 0 1; 0 -1 0]; up in SUN camera coordinates is Rtilt^T z.
    rng = np.random.default_rng(0)
    extrinsics = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    extrinsics *= np.sign(np.linalg.det(extrinsics))
    p = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])
    rtilt = p @ extrinsics @ p.T
    up_sun = rtilt.T @ np.array([0.0, 0.0, 1.0])
    up_opencv = np.array([up_sun[0], -up_sun[2], up_sun[1]])  # SUN (x right, y forward, z up) -> OpenCV
    np.testing.assert_allclose(sun_up_camera(extrinsics), up_opencv, atol=1e-12)


# --- The ScanNet export ------------------------------------------------------------------------------------------

SCANNET_LABELS = [
    ("1", "wall", "wall", "wall"),
    ("3", "bed", "bed", "bed"),
    ("5", "ottoman", "ottoman", "otherfurniture"),
]


def _write_label_map(path: Path, extra: list[tuple[str, str, str, str]]) -> None:
    header = "id\traw_category\tcategory\tcount\tnyu40id\teigen13id\tnyuClass\tnyu40class\teigen13class"
    rows = [f"{i}\t{raw}\t{cat}\t1\t0\t0\t{cat}\t{nyu}\t{nyu}" for i, raw, cat, nyu in SCANNET_LABELS + extra]
    path.write_text("\n".join([header, *rows]) + "\n")


def _colour_intrinsics(k: Intrinsics, scale: float) -> Intrinsics:
    """Intrinsics of the same camera at `scale` times the resolution (0-based pixel centres)."""
    return Intrinsics(k.fx * scale, k.fy * scale, (k.cx + 0.5) * scale - 0.5, (k.cy + 0.5) * scale - 0.5)


def _write_matrix(path: Path, matrix: np.ndarray) -> None:
    np.savetxt(path, matrix)


def test_scannet_export_single_frames_full_resolution_colour_masks_labels_and_axis_alignment(tmp_path):
    truth = _annotated_frame("000001")
    k = truth["camera"]
    depth_k = Intrinsics(k["fx"], k["fy"], k["cx"], k["cy"])
    color_k = _colour_intrinsics(depth_k, 1.5)
    size = (round(730 * 1.5), round(530 * 1.5))
    root = tmp_path / "scene0001_00"
    for sub in ("color", "depth", "pose", "intrinsic", "instance-filt", "label-filt"):
        (root / sub).mkdir(parents=True)
    Image.open(truth["folder"] / "color.jpg").resize(size, Image.BICUBIC).save(root / "color" / "0.jpg")
    Image.fromarray(truth["depth_mm"].astype(np.uint16)).save(root / "depth" / "0.png")
    up = np.array(k["up_camera"]) / np.linalg.norm(k["up_camera"])
    alignment = np.eye(4)
    alignment[:3, :3] = GravityFrame.from_up(up).rotation  # world = camera of frame 0: aligned z is up
    pose = np.eye(4)
    _write_matrix(root / "pose" / "0.txt", pose)
    (root / "scene0001_00.txt").write_text(
        "colorHeight = 795\naxisAlignment = " + " ".join(f"{x:.9f}" for x in alignment.ravel()) + "\n"
    )
    for name, kk in (("color", color_k), ("depth", depth_k)):
        _write_matrix(
            root / "intrinsic" / f"intrinsic_{name}.txt",
            np.array([[kk.fx, 0, kk.cx, 0], [0, kk.fy, kk.cy, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
        )
        _write_matrix(root / "intrinsic" / f"extrinsic_{name}.txt", np.eye(4))
    label_of = {1: 3, 3: 5}  # bed and ottoman; the other boxes get a label the map lacks, and wall pixels 1
    instance_image = np.zeros_like(truth["ids"])
    label_image = np.zeros_like(truth["ids"])
    for object_id in truth["boxes"]:
        instance_image[truth["ids"] == object_id] = object_id
        label_image[truth["ids"] == object_id] = label_of.get(object_id, 99)
    instance_image[:30] = 20  # a wall instance
    label_image[:30] = 1
    for name, image in (("instance-filt", instance_image), ("label-filt", label_image)):
        Image.fromarray(image.astype(np.uint16)).resize(size, Image.NEAREST).save(root / name / "0.png")
    _write_label_map(tmp_path / "scannetv2-labels.combined.tsv", [("99", "lamp", "lamp", "lamp")])

    source = ScanNetFrameSource(root, Thresholds())
    frame = source.load(0)
    assert frame.image.size == size and frame.depth.shape == (size[1], size[0]) and frame.intrinsics == color_k
    np.testing.assert_allclose(frame.up_camera, up, atol=1e-8)
    assert sorted({inst.category for inst in frame.instances}) == ["bed", "lamp", "ottoman"]  # walls left out
    # Every colour pixel holds the sensor reading of the depth pixel on its ray.
    rng = np.random.default_rng(0)
    for u, v in rng.integers([0, 0], size, size=(200, 2)):
        col = round((u - color_k.cx) / color_k.fx * depth_k.fx + depth_k.cx)
        row = round((v - color_k.cy) / color_k.fy * depth_k.fy + depth_k.cy)
        reading = truth["depth_mm"][row, col]
        assert (np.isnan(frame.depth[v, u]) and reading == 0) or frame.depth[v, u] == pytest.approx(reading / 1000)

    manifest = build(
        MultiturnArguments(
            source="rgbd", rgbd_layout="scannet", input_dir=str(root), output_dir=str(tmp_path / "out"), min_yield=1.0
        )
    )
    assert manifest["built"] == 1 and manifest["backends"] == []
    row = load_dataset(str(tmp_path / "out"), split="train")[0]
    assert row["images"][0].size == size and row["provenance"]["gravity_source"] == "given:scannet:axis_alignment"
    assert row["provenance"]["intrinsics"]["fx"] == pytest.approx(color_k.fx)
    for turn in row["turns"]:
        if turn["kind"] == "absolute_depth":
            ((u, v),) = turn["points"]
            col = round((u - color_k.cx) / color_k.fx * depth_k.fx + depth_k.cx)
            row_d = round((v - color_k.cy) / color_k.fy * depth_k.fy + depth_k.cy)
            assert turn["answer"] == f"{truth['depth_mm'][row_d, col] / 1000:.3f}"
    # A lost-tracking pose leaves the frame usable, with gravity estimated instead.
    _write_matrix(root / "pose" / "0.txt", np.full((4, 4), -np.inf))
    assert ScanNetFrameSource(root, Thresholds()).load(0).up_camera is None


def _scannet_from_redwood(root: Path, scale: int = 2) -> tuple[Intrinsics, Intrinsics, list[np.ndarray]]:
    """The Redwood frames as a full-resolution ScanNet export: colour at `scale` times the depth's size."""
    for sub in ("color", "depth", "pose", "intrinsic"):
        (root / sub).mkdir(parents=True)
    depth_k = Intrinsics(525.0, 525.0, 319.5, 239.5)
    color_k = _colour_intrinsics(depth_k, scale)
    poses = read_trajectory_log(REDWOOD / "trajectory.log")
    for i, pose in enumerate(poses):
        Image.open(REDWOOD / "color" / f"{i:05d}.jpg").resize((640 * scale, 480 * scale), Image.BICUBIC).save(
            root / "color" / f"{i}.jpg"
        )
        shutil.copy(REDWOOD / "depth" / f"{i:05d}.png", root / "depth" / f"{i}.png")
        _write_matrix(root / "pose" / f"{i}.txt", pose)
    for name, kk in (("color", color_k), ("depth", depth_k)):
        _write_matrix(
            root / "intrinsic" / f"intrinsic_{name}.txt",
            np.array([[kk.fx, 0, kk.cx, 0], [0, kk.fy, kk.cy, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
        )
    return color_k, depth_k, poses


def test_scannet_multiview_at_full_colour_resolution_skips_lost_tracking_and_goes_on(tmp_path):
    root = tmp_path / "scene0000_00"
    color_k, depth_k, poses = _scannet_from_redwood(root)
    _write_matrix(root / "pose" / "2.txt", np.full((4, 4), -np.inf))  # lost tracking in the middle
    args = MultiviewVQAArguments(
        source="posed_rgbd",
        rgbd_layout="scannet",
        input_dir=str(root),
        output_dir=str(tmp_path / "out"),
        min_covisibility=0.9,
        max_covisibility=1.0,
        depth_margin_m=0.01,
        depth_margin_fraction=0.0,
        view_mix="2:1",
        min_yield=0.0,
    )
    manifest = build_multiview(args, args.thresholds())
    # Sample 2 starts on the lost frame; the others pass over it (counted) and are built.
    assert manifest["skipped"] == {SkipReason.DEGENERATE_POSE.value: 1}
    assert manifest["built"] == 3 and manifest["skipped_frames"][SkipReason.DEGENERATE_POSE.value] >= 1
    rows = load_dataset(str(tmp_path / "out"), split="train")
    depths = {
        i: np.asarray(Image.open(REDWOOD / "depth" / f"{i:05d}.png")).astype(np.float64) / 1000 for i in range(5)
    }
    checked = 0
    for row in rows:
        provenance = row["provenance"]
        assert 2 not in provenance["frames"] and all(image.size == (1280, 960) for image in row["images"])
        assert provenance["intrinsics"][0]["fx"] == pytest.approx(color_k.fx)
        for turn in row["turns"]:
            for (view, u, v), world in zip(turn["points"], turn["world_points"], strict=True):
                frame = provenance["frames"][view - 1]
                # The depth pixel on the colour pixel's ray holds the reading the answer was computed from.
                col = round((u - color_k.cx) / color_k.fx * depth_k.fx + depth_k.cx)
                row_d = round((v - color_k.cy) / color_k.fy * depth_k.fy + depth_k.cy)
                camera = unproject(
                    np.array([float(u)]), np.array([float(v)]), np.array([depths[frame][row_d, col]]), color_k
                )
                expected = camera @ poses[frame][:3, :3].T + poses[frame][:3, 3]
                np.testing.assert_allclose(world, expected[0], atol=1e-4)
                checked += 1
    assert checked >= 6


# --- Streaming view selection ----------------------------------------------------------------------------------


class _Counting:
    """A sequence that counts renders and makes some frames unusable (an invalid pose)."""

    def __init__(self, sequence, bad=()):
        self.sequence, self.bad, self.renders = sequence, set(bad), 0

    def __len__(self):
        return len(self.sequence)

    def _check(self, frame):
        if frame in self.bad:
            raise SkipSample(SkipReason.DEGENERATE_POSE, f"frame {frame}: -inf pose")

    def camera(self, frame):
        self._check(frame)
        return self.sequence.camera(frame)

    def view(self, frame):
        self._check(frame)
        if self.sequence.cache.get(frame) is None:
            self.renders += 1
        return self.sequence.view(frame)


def test_view_selection_is_bounded_on_long_sequences_and_passes_over_bad_frames():
    long = SyntheticSequence.generate(5, 240, (96, 72), (5, 7))
    long.cache.capacity = 6
    bad = set(range(40, 240, 7))
    sequence = _Counting(long, bad)
    thresholds = SelectionThresholds(max_candidates=8)
    for index, (start, num_views) in enumerate([(0, 2), (10, 4), (30, 8)]):
        sequence.renders = 0
        chosen = select_views(sequence, start, num_views, thresholds, np.random.default_rng(index))
        assert chosen.candidates <= thresholds.max_candidates and len(long.cache) <= 6
        # Decoded: the anchor, the candidates, the frames between (and a re-decode of an evicted anchor).
        assert sequence.renders <= 1 + thresholds.max_candidates + (num_views - 2) + 1
        assert not set(chosen.frames) & bad and chosen.frames == sorted(chosen.frames)
        assert thresholds.min_covisibility <= chosen.anchor_covisibility <= thresholds.max_covisibility
        assert sum(chosen.skipped_frames.values()) >= 1 and set(chosen.skipped_frames) == {"degenerate_pose"}
    with pytest.raises(SkipSample) as info:
        select_views(_Counting(long, bad={0}), 0, 2, thresholds, np.random.default_rng(0))
    assert info.value.reason == SkipReason.DEGENERATE_POSE  # a bad first anchor is the sample's own skip


def test_scannet_sequence_reads_poses_without_decoding_and_refuses_bad_ones(tmp_path):
    root = tmp_path / "scene0002_00"
    color_k, _, _ = _scannet_from_redwood(root, scale=1)
    (root / "pose" / "3.txt").write_text("not a pose")
    _write_matrix(root / "pose" / "1.txt", np.diag([2.0, 2.0, 2.0, 1.0]))  # not rigid
    sequence = PosedRGBDSequence.from_scannet(root, Thresholds(), SelectionThresholds())
    camera = sequence.camera(0)
    assert camera.size == (640, 480) and camera.intrinsics == color_k and len(sequence.cache) == 0
    for frame in (1, 3):
        with pytest.raises(SkipSample) as info:
            sequence.camera(frame)
        assert info.value.reason == SkipReason.DEGENERATE_POSE
    shutil.rmtree(root / "pose")
    with pytest.raises(ValueError, match="not a ScanNet export.*pose"):
        PosedRGBDSequence.from_scannet(root, Thresholds(), SelectionThresholds())
    _write_label_map(root / "scannetv2-labels.combined.tsv", [])
    with pytest.raises(ValueError, match="intrinsic_color"):
        ScanNetFrameSource(root / "..", Thresholds(), label_map=root / "scannetv2-labels.combined.tsv")
