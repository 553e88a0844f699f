"""Geometry of the single-view builder on annotated RGB-D frames, measured against their ground-truth 3D boxes.

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057). Runs `spatial.analyse` and the question writer
(`multiturn.build_example`) over every frame of a folder in the annotated layout (`../shared/data/annotated/`,
described in its README), for several seeds (the writer picks points, pairs and phrasings from the seed), and
compares with the frames' boxes and up vectors:

- per frame: the angle between the answer frame's up axis and the true up (`gravity_error_deg`, over the seeds
  where the sample is marked gravity-aligned), and how often it is marked not aligned;
- per object with a box, wherever its cube may be stated (`measurable`): cube-centre error (metres), size error
  (largest of the three), yaw error (degrees);
- over the written turns: relation turns whose asserted relation agrees with the boxes' (centres compared in the
  true answer frame, or in the camera axes for samples not aligned), relations the boxes contradict, asserted
  relations whose true separation is below the near-tie margin (`Thresholds.relation_margin_m`), and the relative
  error of centre distances.

Yaw: the boxes' `heading_camera` gives their first size axis; the builder's cube yaw is canonicalised to [0, 90)
(a box turned by 90 degrees is the same box with width and length swapped). So yaws are compared modulo 90
degrees, and when the nearest match is an odd number of quarter turns the cube's width is compared with the box's
second size and its length with the first.

Masks: `--masks given` (default) uses `instances.png`; `--masks perception` runs the default perception path of
`spatialboost-build-multiturn` (SAM3) and matches its instances to the boxes by mask overlap. Offline the
segmenter's weights cannot be downloaded; the script then says so and measures nothing.

Robustness data: `--write-synthetic DIR` writes procedural scenes in the annotated layout (exact boxes and up,
cameras 1.0-1.6 m high, pitched 0-25 degrees and rolled up to `--roll-deg`, depth degraded like a Kinect or
subsampled to 13 % like SUN RGB-D's point clouds, or with a depth model's simulated errors), to be measured with
`--data DIR`. `--estimate-gravity` ignores
the frames' up vectors (the estimation path).

    python benchmarks/bench_geometry_real.py --data ../shared/data/annotated --seeds 20
    python benchmarks/bench_geometry_real.py --data ../shared/data/annotated --seeds 20 --estimate-gravity
    python benchmarks/bench_geometry_real.py --write-synthetic /tmp/synthetic-kinect --count 30 --degrade kinect

The last line printed is a JSON object with the summary figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset_builders.frames import SkipSample  # noqa: E402
from dataset_builders.geometry import CAMERA_AXES_FRAME, GravityFrame, angle_deg  # noqa: E402
from dataset_builders.multiturn import build_example  # noqa: E402
from dataset_builders.scenes import generate_scene, look_at  # noqa: E402
from dataset_builders.sources import AnnotatedRGBDSource  # noqa: E402
from dataset_builders.spatial import Thresholds, analyse  # noqa: E402


AXIS = {"left_right": 0, "front_behind": 1, "above_below": 2}
# Sign of the first-minus-second centre offset along the axis when "first <relation> second" holds.
HOLDS_SIGN = {"left_right": -1.0, "front_behind": -1.0, "above_below": 1.0}


def read_truth(folder: Path) -> tuple[np.ndarray, dict[int, dict]]:
    """True up vector and boxes (by id) of one frame folder."""
    up = np.array(json.loads((folder / "camera.json").read_text())["up_camera"], dtype=np.float64)
    boxes = {int(o["id"]): o for o in json.loads((folder / "objects.json").read_text()) if "center_camera" in o}
    return up / np.linalg.norm(up), boxes


def cube_errors(cube, rotation: np.ndarray, box: dict) -> tuple[float, float, float]:
    """Centre error (m), largest size error (m) and yaw error (deg) of a cube in the answer frame `rotation`."""
    centre = rotation @ np.array(box["center_camera"])
    heading = rotation @ np.array(box["heading_camera"])
    box_yaw = float(np.arctan2(heading[1], heading[0]))  # from X to the box's first size axis, about Z
    difference = np.degrees(cube.yaw - box_yaw)
    quarter_turns = int(np.round(difference / 90.0))
    yaw_error = abs(difference - 90.0 * quarter_turns)
    width, length, height = box["size"]
    if quarter_turns % 2:
        width, length = length, width
    size_error = float(np.abs(cube.size - np.array([width, length, height])).max())
    return float(np.linalg.norm(cube.center - centre)), size_error, float(yaw_error)


def match_instances(frame, folder: Path) -> dict[int, int]:
    """Instance position -> box id: given masks carry their ids; predicted ones match the GT mask they overlap most
    (intersection over union at least 0.5)."""
    if frame.instances_origin == "given":
        return {i: inst.instance_id for i, inst in enumerate(frame.instances)}
    ids = np.asarray(Image.open(folder / "instances.png")).astype(np.int64)
    matched = {}
    for i, inst in enumerate(frame.instances):
        values, counts = np.unique(ids[inst.mask & (ids > 0)], return_counts=True)
        if len(values):
            best = int(values[counts.argmax()])
            union = (inst.mask | (ids == best)).sum()
            if counts.max() / union >= 0.5:
                matched[i] = best
    return matched


def evaluate(source: AnnotatedRGBDSource, seeds: int, thresholds: Thresholds, perception=None) -> dict:
    """Every measurement over every frame and seed (see the module docstring)."""
    frames, objects, relations, distances = [], {}, [], []
    for index in range(len(source)):
        folder = source.folders[index]
        try:
            loaded = source.load(index)
        except SkipSample as skip:
            frames.append({"frame": str(folder.relative_to(source.root)), "skipped": skip.reason.value})
            continue
        if perception is not None:
            loaded.instances = None
            loaded = perception.complete([loaded])[0]
        true_up, boxes = read_truth(folder)
        to_box = match_instances(loaded, folder)
        record = {"frame": loaded.sample_id, "errors": [], "unaligned": 0, "skips": 0, "sources": set()}
        for seed in range(seeds):
            rng = np.random.default_rng([seed, index])
            try:
                scene = analyse(loaded, thresholds, rng)
            except SkipSample:
                record["skips"] += 1
                continue
            record["sources"].add(scene.gravity.source)
            if scene.frame.aligned:
                record["errors"].append(angle_deg(scene.frame.rotation[2], true_up))
            else:
                record["unaligned"] += 1
            for obj in scene.objects:
                box = boxes.get(to_box.get(obj.index, -1))
                if box is None:
                    continue
                entry = objects.setdefault(
                    (loaded.sample_id, box["id"]),
                    {"category": box["category"], "seen": 0, "eligible": 0, "measurable": 0, "errors": []},
                )
                entry["seen"] += 1
                entry["eligible"] += obj.eligible
                if obj.measurable:
                    entry["measurable"] += 1
                    entry["errors"].append(cube_errors(obj.cube, scene.frame.rotation, box))
            try:
                row = build_example(loaded, index, seed, "forward", thresholds)
            except SkipSample:
                continue
            aligned = row["provenance"]["gravity_aligned"]
            truth_frame = GravityFrame.from_up(true_up) if aligned else CAMERA_AXES_FRAME
            for turn in row["turns"]:
                ids = [to_box.get(i, -1) for i in turn["object_ids"]]
                if turn["kind"] not in AXIS and turn["kind"] != "distance":
                    continue
                if any(i not in boxes for i in ids):
                    continue
                first, second = (np.array(boxes[i]["center_camera"]) for i in ids)
                if turn["kind"] == "distance":
                    truth = float(np.linalg.norm(first - second))
                    distances.append(abs(turn["value"] - truth) / truth)
                    continue
                axis = AXIS[turn["kind"]]
                true_offset = float(truth_frame.to_answer((first - second)[None])[0, axis])
                relations.append(
                    {
                        "kind": turn["kind"],
                        "agrees": bool(np.sign(turn["value"]) == np.sign(true_offset)),
                        "true_offset": true_offset,
                        "stated_offset": float(turn["value"]),
                    }
                )
        frames.append(record)
    return {"frames": frames, "objects": objects, "relations": relations, "distances": distances}


def summarise(results: dict, thresholds: Thresholds) -> dict:
    frames = [f for f in results["frames"] if "skipped" not in f]
    errors = [e for f in frames for e in f["errors"]]
    measured = [e for o in results["objects"].values() for e in o["errors"]]
    relations = results["relations"]
    margin = thresholds.relation_margin_m

    def median(values):
        return float(np.median(values)) if len(values) else None

    return {
        "frames": len(frames),
        "objects": len(results["objects"]),
        "gravity_error_deg_max": max(errors) if errors else None,
        "frames_marked_unaligned": int(sum(f["unaligned"] > 0 for f in frames)),
        "cube_centre_error_m_median": median([e[0] for e in measured]),
        "cube_yaw_error_deg_median": median([e[2] for e in measured]),
        "relation_turns": len(relations),
        "relations_contradicted": sum(not r["agrees"] for r in relations),
        "relations_below_margin": int(sum(abs(r["true_offset"]) < margin for r in relations)),
        "distance_rel_error_median": median(results["distances"]),
        # Beyond the required keys: the spread behind the medians.
        "cube_centre_error_m_max": max((e[0] for e in measured), default=None),
        "cube_size_error_m_median": median([e[1] for e in measured]),
        "cube_turn_objects": int(sum(o["measurable"] > 0 for o in results["objects"].values())),
        "relations_agreeing": sum(r["agrees"] for r in relations),
        "distance_turns": len(results["distances"]),
        "distance_rel_error_max": max(results["distances"], default=None),
        "samples_unaligned": sum(f["unaligned"] for f in frames),
        "samples": sum(len(f["errors"]) + f["unaligned"] for f in frames),
    }


def print_tables(results: dict, summary: dict) -> None:
    print("| frame | gravity | error (deg, max over aligned seeds) | seeds not aligned | seeds skipped |")
    print("|---|---|---|---|---|")
    for f in results["frames"]:
        if "skipped" in f:
            print(f"| {f['frame']} | skipped: {f['skipped']} | | | |")
            continue
        worst = f"{max(f['errors']):.2f}" if f["errors"] else "-"
        print(f"| {f['frame']} | {', '.join(sorted(f['sources']))} | {worst} | {f['unaligned']} | {f['skips']} |")
    print()
    print(
        "| frame | box | category | eligible / seen | cube stated | centre error (m) | size error (m) | yaw error (deg) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for (frame, box), o in sorted(results["objects"].items()):
        if o["errors"]:
            c, s, y = (np.median([e[i] for e in o["errors"]]) for i in range(3))
            figures = f"{c:.3f} | {s:.3f} | {y:.1f}"
        else:
            figures = "- | - | -"
        print(f"| {frame} | {box} | {o['category']} | {o['eligible']} / {o['seen']} | {o['measurable']} | {figures} |")
    print()
    print("| kind | turns | agree | contradicted | true separation below margin |")
    print("|---|---|---|---|---|")
    for kind in AXIS:
        rs = [r for r in results["relations"] if r["kind"] == kind]
        print(
            f"| {kind} | {len(rs)} | {sum(r['agrees'] for r in rs)} | {sum(not r['agrees'] for r in rs)} | "
            f"{sum(abs(r['true_offset']) < Thresholds().relation_margin_m for r in rs)} |"
        )
    print()
    for key, value in summary.items():
        print(f"{key}: {value}")


# --- Synthetic scenes in the annotated layout (robustness data) ------------------------------------------------


def kinect_noise(depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Depth noise growing with the square of depth (1.2 mm + 1.9 mm per m^2 beyond 0.4 m, Nguyen et al. 2012)."""
    sigma = 0.0012 + 0.0019 * np.maximum(depth - 0.4, 0.0) ** 2
    return depth + rng.normal(size=depth.shape) * sigma


def model_like(depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Errors of a metric depth model, simulated: a global scale error of up to 8 % and a smooth distortion of up to
    4 % across the image (published AbsRel of Depth Pro and Depth Anything V2 metric indoors: 5-10 %); no holes."""
    from scipy import ndimage

    height, width = depth.shape
    field = ndimage.zoom(rng.normal(size=(3, 4)), (height / 3, width / 4), order=3)[:height, :width]
    field = field / max(np.abs(field).max(), 1e-6)
    return depth * rng.uniform(0.92, 1.08) * (1.0 + 0.04 * field)


def degrade(depth: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
    """`none`, `kinect` (noise, dropout blobs and shadows at depth jumps, flying pixels, mm quantisation), `sparse`
    (noise, then 13 % of the readings kept at random, as in SUN RGB-D's 50 000-point clouds) or `model`
    (`model_like`)."""
    if mode == "none":
        return depth.copy()
    if mode == "model":
        return model_like(depth, rng)
    from scipy import ndimage

    noisy = kinect_noise(depth, rng)
    if mode == "sparse":
        return np.where(rng.random(depth.shape) < 0.13, noisy, 0.0)
    jump = np.zeros(depth.shape, dtype=bool)
    jump[:, 1:] |= np.abs(np.diff(depth, axis=1)) > 0.05 * depth[:, 1:]
    jump[1:] |= np.abs(np.diff(depth, axis=0)) > 0.05 * depth[1:]
    # Flying pixels: a third of the jump pixels take a mixture of both sides.
    flying = jump & (rng.random(depth.shape) < 0.33)
    neighbour = np.roll(depth, 1, axis=1)
    noisy = np.where(flying, 0.5 * (depth + neighbour), noisy)
    shadows = ndimage.binary_dilation(jump & ~flying, iterations=2) & (rng.random(depth.shape) < 0.5)
    blobs = ndimage.binary_dilation(rng.random(depth.shape) < 0.002, iterations=3)
    return np.where(shadows | blobs, 0.0, np.round(noisy, 3))


def write_synthetic(out: Path, count: int, seed: int, mode: str, roll_deg: float) -> int:
    """Procedural scenes as annotated frames; returns the number written."""
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        scene = generate_scene(int(rng.integers(2**31)), (5, 9), (640, 480), num_views=1)
        centroid = np.mean([o.center for o in scene.objects], axis=0)
        # SUN RGB-D-like camera: lower and flatter than the scenes' own, sometimes rolled.
        start = scene.poses[0][:3, 3].copy()
        start[2] = rng.uniform(1.0, 1.6)
        pitch = np.radians(rng.uniform(0.0, 25.0))
        distance = np.linalg.norm(centroid[:2] - start[:2])
        target = np.array([centroid[0], centroid[1], start[2] - distance * np.tan(pitch)])
        pose = look_at(start, target, roll=np.radians(rng.uniform(-roll_deg, roll_deg)))
        scene = replace(scene, poses=[pose])
        rendering = scene.render(0)
        depth = degrade(rendering.depth.astype(np.float64), mode, rng)
        depth_mm = np.clip(np.round(depth * 1000), 0, 65535).astype(np.uint16)
        instances = np.where(depth_mm > 0, rendering.instances, 0).astype(np.uint16)
        to_camera = pose[:3, :3].T
        up = to_camera @ np.array([0.0, 0.0, 1.0])
        boxes = []
        for obj in scene.objects:
            if not (instances == obj.instance_id).any():
                continue
            heading = to_camera @ obj.rotation()[:, 0]  # the object's own x axis carries size[0]
            boxes.append(
                {
                    "id": obj.instance_id,
                    "category": obj.category,
                    "center_camera": (to_camera @ (obj.center - pose[:3, 3])).tolist(),
                    "size": obj.size.tolist(),
                    "heading_camera": heading.tolist(),
                }
            )
        folder = out / f"{index:04d}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(rendering.image).save(folder / "color.jpg", quality=95)
        Image.fromarray(depth_mm).save(folder / "depth.png")
        Image.fromarray(instances).save(folder / "instances.png")
        k = scene.intrinsics
        camera = {
            "fx": k.fx,
            "fy": k.fy,
            "cx": k.cx,
            "cy": k.cy,
            "width": 640,
            "height": 480,
            "up_camera": up.tolist(),
        }
        if mode != "kinect" and mode != "sparse":
            camera["depth_origin"] = {"none": "synthetic", "model": "simulated-depth-model"}[mode]
        (folder / "camera.json").write_text(json.dumps(camera))
        (folder / "objects.json").write_text(json.dumps(boxes))
        written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="Folder in the annotated layout.")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--estimate-gravity", action="store_true", help="Ignore the frames' up vectors.")
    parser.add_argument("--masks", choices=("given", "perception"), default="given")
    parser.add_argument("--write-synthetic", type=Path, help="Write procedural frames in the annotated layout here.")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--degrade", choices=("none", "kinect", "sparse", "model"), default="kinect")
    parser.add_argument("--roll-deg", type=float, default=15.0)
    args = parser.parse_args()
    if args.write_synthetic is not None:
        written = write_synthetic(args.write_synthetic, args.count, args.seed, args.degrade, args.roll_deg)
        print(f"wrote {written} frames ({args.degrade}) to {args.write_synthetic}")
        return
    if args.data is None:
        parser.error("--data or --write-synthetic is required")
    thresholds = Thresholds()
    source = AnnotatedRGBDSource(args.data, thresholds, use_up_vector=not args.estimate_gravity)
    perception = None
    if args.masks == "perception":
        from dataset_builders.multiturn import MultiturnArguments, make_perception
        from dataset_builders.perception import BackendUnavailableError

        # The default perception path of an RGB-D folder without masks: the default segmenter (depth is the sensor's).
        default = MultiturnArguments(source="rgbd", rgbd_layout="redwood", input_dir=str(args.data))
        try:
            perception = make_perception(default)
        except BackendUnavailableError as error:
            print(f"default perception path cannot run here: {error}")
            print(json.dumps({"frames": 0, "perception": "unavailable"}))
            return
    results = evaluate(source, args.seeds, thresholds, perception)
    summary = summarise(results, thresholds)
    print(
        f"{args.data}: {len(source)} frames, {args.seeds} seeds, masks {args.masks}, "
        f"gravity {'estimated' if args.estimate_gravity else 'from up_camera'}"
    )
    print_tables(results, summary)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
