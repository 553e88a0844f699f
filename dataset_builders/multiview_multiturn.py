"""Build and publish the multi-view multi-turn spatial reasoning dataset (SpatialBoost stage 3, multi-view part).

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057): stage 3 draws two thirds of its data from
multi-view scenes. The 12-turn structure of `dataset_builders.multiturn` (5 pixel, 4 object, 1 scene, 2 caption
turns) is applied to 2-, 4- and 8-view samples, with cross-view questions: the depth of a point marked in one view
as seen from another, which view sees a point or an object closer, and the distance between objects seen in
different views.

```
anchors + frames between (views.select_views) -> points on the anchors (multiview_vqa.choose_points)
   -> objects fused over all views (instance masks, depth, poses; world frame) -> 12 turns -> row
```

3D numbers use the answer frame of view 1 (`dataset_builders.geometry`: origin at camera 1, `Y` its horizontal
viewing direction, `Z` up), built from its pose; the world frame must therefore be gravity-aligned (`Z` up), which
the synthetic scenes are. Objects need instance ids shared across views, so the source is synthetic.

Usage:

    spatialboost-build-multiview-multiturn --num-samples 1000 --seed 0 --output-dir mv-multiturn --num-proc 2
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
from datasets import Features, List, Value

from . import publishing
from .arguments import MultiviewMultiturnArguments
from .building import ChunkedBuilder, run_build
from .frames import SkipReason, SkipSample
from .geometry import Cube, canonical_yaw, centre_distance, erode_mask, fit_cube, occluded_boundary_fraction
from .multiturn import TURN_FEATURES, draw_marks, marker_radius
from .multiview_vqa import (
    PROVENANCE_FEATURES,
    MarkedPoint,
    SyntheticMultiviewSource,
    card_tables,
    choose_points,
)
from .questions import (
    CUBE_TOLERANCE_M,
    DEPTH_TOLERANCE_M,
    DISTANCE_TOLERANCE_FRACTION,
    Conversation,
    TurnTruth,
    format_depth,
    format_distance,
)
from .spatial import Thresholds, mask_anchor
from .views import PosedView, SelectionThresholds, ViewSelection, select_views, views_for_index


FEATURES = Features(
    {
        "images": publishing.IMAGES_FEATURE,
        "messages": publishing.MESSAGES_FEATURE,
        "turns": List({**TURN_FEATURES, "views": List(Value("int32"))}),
        "provenance": {**PROVENANCE_FEATURES, "dropped_turns": List(Value("string"))},
    }
)

COLUMN_DOCS = {
    "images": "All views in capture order (2, 4 or 8); numbered points are drawn on the first and last.",
    "messages": (
        "TRL conversational format: 12 user/assistant pairs (fewer when near-ties are left out); the first user "
        'turn starts with one `{"type": "image"}` per view, in the order of `images`.'
    ),
    "turns": (
        "Structured truth per turn: `level` (pixel, object, scene, caption), `kind` (absolute_depth, "
        "relative_depth, cross_view_depth, closer_view, object_closer_view, cube, left_right, above_below, "
        "distance, caption, detailed_caption), short `answer`, `value` in metres, `unit` shown, absolute "
        "`tolerance`, cube `vector` (X, Y, Z, width, length, height in metres, yaw in degrees; view 1's answer "
        "frame), `points` as (view, u, v) with 1-based views, `objects` as named, their `object_ids` (instance ids "
        "of the scene), and the `views` compared."
    ),
    "provenance": (
        "As the multi-view VQA dataset: source, ids, views and their frames, covisibility, per-view intrinsics and "
        "poses, thresholds; plus the turns left out (`dropped_turns`)."
    ),
}


@dataclass
class FusedObject:
    """One object seen in the sample: its cube from the points of every view that sees it (world frame)."""

    object_id: int
    category: str
    seen_in: list[int]  # 0-based views where enough of it is visible
    whole: bool  # fully visible and unoccluded in at least one view
    cube: Cube | None = None


@dataclass
class Turn(TurnTruth):
    """A single-view turn's structured truth plus the views (0-based) the turn refers to."""

    views: list[int] = field(default_factory=list)


def fuse_objects(views: list[PosedView], thresholds: Thresholds, rng: np.random.Generator) -> dict[int, FusedObject]:
    """Objects of the sample with world-frame cubes from their eroded masks in every view that sees them."""
    objects: dict[int, FusedObject] = {}
    points: dict[int, list[np.ndarray]] = {}
    for position, view in enumerate(views):
        height, width = view.depth.shape
        for object_id in np.unique(view.instances):
            if object_id == 0:
                continue
            mask = view.instances == object_id
            eroded = erode_mask(mask, thresholds.erosion_px)
            if eroded.sum() < thresholds.min_object_pixels:
                continue
            rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
            on_border = rows[0] == 0 or cols[0] == 0 or rows[-1] == height - 1 or cols[-1] == width - 1
            # The outline test on the mask's bounding box plus a margin (a crop gives the same answer, faster).
            crop = np.s_[max(rows[0] - 2, 0) : rows[-1] + 3, max(cols[0] - 2, 0) : cols[-1] + 3]
            others = (view.instances[crop] != 0) & ~mask[crop]
            whole = not on_border and (
                occluded_boundary_fraction(mask[crop], view.depth[crop], others) <= thresholds.max_occluded_fraction
            )
            entry = objects.setdefault(
                int(object_id), FusedObject(int(object_id), view.categories[int(object_id)], [], False)
            )
            entry.seen_in.append(position)
            entry.whole |= whole
            vs, us = np.nonzero(eroded)
            keep = rng.permutation(len(us))[: thresholds.max_points_per_object]
            points.setdefault(int(object_id), []).append(view.world_points(us[keep], vs[keep]))
    for object_id, entry in objects.items():
        entry.cube = fit_cube(np.concatenate(points[object_id]))
    return objects


def answer_frame(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """World-to-answer rotation, origin and heading (world yaw of the answer frame's `Y` axis minus 90 degrees)."""
    forward = pose[:3, 2].copy()
    forward[2] = 0.0
    y_axis = forward / np.linalg.norm(forward)
    x_axis = np.cross(y_axis, [0.0, 0.0, 1.0])
    heading = float(np.arctan2(y_axis[1], y_axis[0]) - np.pi / 2)
    return np.stack([x_axis, y_axis, [0.0, 0.0, 1.0]]), pose[:3, 3], heading


def to_answer_frame(cube: Cube, pose: np.ndarray) -> Cube:
    """A world-frame cube written in the answer frame of the camera at `pose`."""
    rotation, origin, heading = answer_frame(pose)
    yaw, width, length = canonical_yaw(float(np.mod(cube.yaw - heading, 2 * np.pi)), *cube.size[:2])
    return Cube(rotation @ (cube.center - origin), np.array([width, length, cube.size[2]]), yaw)


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:]


def _depth(view: PosedView, world: np.ndarray) -> float:
    return float(view.camera_points(world[None])[0, 2])


def write_turns(
    points: list[MarkedPoint],
    objects: dict[int, FusedObject],
    views: list[PosedView],
    thresholds: Thresholds,
    rng: np.random.Generator,
) -> tuple[list[Turn], list[str], list[tuple[int, str, int, int]]]:
    """The 12 turns, the kinds left out as near-ties, and object letters to draw as `(view, letter, u, v)`.

    Raises:
        SkipSample: `NO_OBJECT_PAIR` when no object is seen whole by both anchors, or no partner is seen in the last.
    """
    p1, p2, p3 = points
    last = len(views) - 1
    n = last + 1
    dropped: list[str] = []

    def mark(p: MarkedPoint) -> list[int]:
        return [p.view + 1, p.u, p.v]

    d1, d2 = _depth(views[0], p1.world), _depth(views[last], p2.world)
    d3 = [_depth(views[0], p3.world), _depth(views[last], p3.world)]
    turns = [
        Turn(
            "pixel",
            "absolute_depth",
            f"What is the depth of point 1 in view 1, at pixel ({p1.u}, {p1.v})?",
            f"Point 1 is {format_depth(d1)} from the camera of view 1.",
            f"{d1:.3f}",
            d1,
            "m",
            DEPTH_TOLERANCE_M,
            points=[mark(p1)],
            views=[1],
        ),
        Turn(
            "pixel",
            "absolute_depth",
            f"What is the depth of point 2 in view {n}, at pixel ({p2.u}, {p2.v})?",
            f"Point 2 is {format_depth(d2)} from the camera of view {n}.",
            f"{d2:.3f}",
            d2,
            "m",
            DEPTH_TOLERANCE_M,
            points=[mark(p2)],
            views=[n],
        ),
    ]
    if abs(d1 - d2) >= max(thresholds.depth_margin_m, thresholds.depth_margin_fraction * min(d1, d2)):
        closer = d1 < d2
        turns.append(
            Turn(
                "pixel",
                "relative_depth",
                f"Is point 1 closer to the camera of view 1 than point 2 is to the camera of view {n}?",
                f"{'Yes' if closer else 'No'}. Point 1 is at {format_depth(d1)} in view 1 and point 2 at "
                f"{format_depth(d2)} in view {n}.",
                "yes" if closer else "no",
                d1 - d2,
                "m",
                2 * DEPTH_TOLERANCE_M,
                points=[mark(p1), mark(p2)],
                views=[1, n],
            )
        )
    else:
        dropped.append("relative_depth")
    turns.append(
        Turn(
            "pixel",
            "cross_view_depth",
            f"Point 3 is marked in view 1 at pixel ({p3.u}, {p3.v}). How far is it from the camera of view {n}, "
            "along that camera's viewing axis?",
            f"Seen from view {n}, point 3 is at a depth of {format_depth(d3[1])} (it is {format_depth(d3[0])} in "
            "view 1).",
            f"{d3[1]:.3f}",
            d3[1],
            "m",
            DEPTH_TOLERANCE_M,
            points=[mark(p3)],
            views=[1, n],
        )
    )
    nearer = 1 if d3[0] < d3[1] else n
    turns.append(
        Turn(
            "pixel",
            "closer_view",
            f"Which view sees point 3 closer, view 1 or view {n}?",
            f"View {nearer}: point 3 is {format_depth(min(d3))} away there, against {format_depth(max(d3))}.",
            f"view {nearer}",
            min(d3),
            "m",
            DEPTH_TOLERANCE_M,
            points=[mark(p3)],
            views=[1, n],
        )
    )

    # Objects are named by category when it is unique in the sample, else by a letter drawn on them in one view.
    counts = Counter(o.category for o in objects.values())
    usable = [o for o in objects.values() if o.whole]
    firsts = [o for o in usable if 0 in o.seen_in and last in o.seen_in]
    margin = thresholds.relation_margin_m
    rng.shuffle(firsts)
    first = next(
        (o for o in firsts if abs(_depth(views[0], o.cube.center) - _depth(views[last], o.cube.center)) >= margin),
        None,
    )
    if first is None:
        raise SkipSample(SkipReason.NO_OBJECT_PAIR, "no whole object seen by both anchors at clearly different depths")
    # The partner is seen in the last view; one that view 1 does not see makes the distance truly cross-view.
    partners = [o for o in usable if last in o.seen_in and o is not first]
    partners.sort(key=lambda o: (0 in o.seen_in, rng.random()))
    if not partners:
        raise SkipSample(SkipReason.NO_OBJECT_PAIR, "no second whole object seen in the last view")
    second = partners[0]
    object_marks: list[tuple[int, str, int, int]] = []

    def name(obj: FusedObject, position: int) -> str:
        if counts[obj.category] == 1:
            return f"the {obj.category}"
        letter = "AB"[len(object_marks)]
        object_marks.append((position, letter, *mask_anchor(views[position].instances == obj.object_id)))
        return f"the {obj.category} marked {letter} in view {position + 1}"

    a, b = name(first, 0), name(second, last)
    ids = [first.object_id, second.object_id]

    depths = [_depth(views[0], first.cube.center), _depth(views[last], first.cube.center)]
    nearer = 1 if depths[0] < depths[1] else n
    turns.append(
        Turn(
            "object",
            "object_closer_view",
            f"Which view sees {a} closer, view 1 or view {n}?",
            f"View {nearer}: the centre of {a} is {format_depth(min(depths))} deep there, against "
            f"{format_depth(max(depths))} in the other.",
            f"view {nearer}",
            min(depths),
            "m",
            CUBE_TOLERANCE_M,
            objects=[a],
            object_ids=ids[:1],
            views=[1, n],
        )
    )
    answer_cubes = {o.object_id: to_answer_frame(o.cube, views[0].camera_to_world) for o in (first, second)}
    for obj, label in ((first, a), (second, b)):
        cube = answer_cubes[obj.object_id]
        (x, y, z), (w, length, h) = cube.center, cube.size
        yaw = float(np.degrees(cube.yaw))
        seen = ", ".join(f"view {i + 1}" for i in obj.seen_in)
        turns.append(
            Turn(
                "object",
                "cube",
                f"Using every view it appears in, what is the 3D bounding cube of {label}, in view 1's frame?",
                f"{_sentence(label)} (seen in {seen}) is centred at (x, y, z) = ({x:.3f}, {y:.3f}, {z:.3f}) m; it "
                f"is {w:.3f} m wide, {length:.3f} m long and {h:.3f} m high, turned {yaw:.0f}° about the vertical.",
                f"({x:.3f}, {y:.3f}, {z:.3f})",
                None,
                "m",
                CUBE_TOLERANCE_M,
                vector=[float(x), float(y), float(z), float(w), float(length), float(h), yaw],
                objects=[label],
                object_ids=[obj.object_id],
                views=[i + 1 for i in obj.seen_in],
            )
        )
    ca, cb = answer_cubes[first.object_id], answer_cubes[second.object_id]
    for kind, axis, words in (("left_right", 0, ("left of", "right of")), ("above_below", 2, ("below", "above"))):
        offset = float(ca.center[axis] - cb.center[axis])
        if abs(offset) < margin:
            continue
        word = words[0] if offset < 0 else words[1]
        gap, unit = format_distance(abs(offset))
        turns.append(
            Turn(
                "object",
                kind,
                f"Seen from view 1, is {a} {' or '.join(words)} {b}?",
                f"{_sentence(a)} is {word} {b}, by about {gap} between centres.",
                word.split()[0],
                offset,
                unit,
                margin,
                objects=[a, b],
                object_ids=ids,
                views=[1],
            )
        )
        break
    else:
        dropped.append("left_right")

    distance = centre_distance(ca, cb)

    def seen_in(label: str, view: int) -> str:  # a marked object's label names its view already
        return label if label.endswith(f"in view {view}") else f"{label} (seen in view {view})"

    text, unit = format_distance(distance)
    delta = cb.center - ca.center
    turns.append(
        Turn(
            "scene",
            "distance",
            f"Take {seen_in(a, 1)} and {seen_in(b, n)}. How far apart are their centres?",
            f"From the cubes, {a} is centred at ({ca.center[0]:.3f}, {ca.center[1]:.3f}, {ca.center[2]:.3f}) m and "
            f"{b} at ({cb.center[0]:.3f}, {cb.center[1]:.3f}, {cb.center[2]:.3f}) m, in view 1's frame. The offsets "
            f"are {delta[0]:+.3f}, {delta[1]:+.3f} and {delta[2]:+.3f} m, so the distance is {text}.",
            text,
            distance,
            unit,
            DISTANCE_TOLERANCE_FRACTION * distance,
            objects=[a, b],
            object_ids=ids,
            views=[1, n],
        )
    )
    categories = sorted(counts)
    listed = ", ".join(categories[:-1]) + (" and " if len(categories) > 1 else "") + categories[-1]
    turns.append(
        Turn(
            "caption",
            "caption",
            "Describe the scene briefly.",
            f"An indoor room with {listed}, seen from {n} viewpoints.",
            "",
        )
    )
    placed = sorted((to_answer_frame(o.cube, views[0].camera_to_world).center[0], o.category) for o in usable)
    turns.append(
        Turn(
            "caption",
            "detailed_caption",
            "Describe the layout across the views in detail.",
            f"The camera moves through a room with {listed}. Seen from view 1, from left to right: "
            f"{', '.join(f'the {c}' for _, c in placed)}.",
            "",
        )
    )
    return turns, dropped, object_marks


def build_example(
    chosen: ViewSelection,
    sample_id: str,
    index: int,
    seed: int,
    thresholds: Thresholds,
    selection: SelectionThresholds,
    selection_method: str,
    jpeg_quality: int = 95,
) -> dict:
    """One dataset row from selected synthetic views.

    Raises:
        SkipSample: `NO_POINT_PAIR`, `NO_OBJECT_PAIR` or `EXPANSION_INVALID`.
    """
    rng = np.random.default_rng([seed, index, 2])
    views = chosen.views
    last = len(views) - 1
    radius = marker_radius(views[0].image)
    points = choose_points((views[0], views[last]), thresholds, selection, rng, 3 * radius, last)
    if not all(view.sees(points[2].world[None], selection)[0] for view in views):
        raise SkipSample(SkipReason.EXPANSION_INVALID, "point 3 is not seen in every view")
    objects = fuse_objects(views, thresholds, rng)
    turns, dropped, object_marks = write_turns(points, objects, views, thresholds, rng)

    images = []
    for position, view in enumerate(views):
        marks = [(str(p.label), p.u, p.v) for p in points if p.view == position]
        letters = [(letter, u, v) for at, letter, u, v in object_marks if at == position]
        if marks or letters:
            image = draw_marks(view.image, Conversation([], marks, letters, [], ""), radius)
        else:
            image = view.image
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=jpeg_quality)
        images.append({"bytes": buffer.getvalue(), "path": None})
    preamble = (
        f"These are {len(views)} views of one room, in capture order. Points are marked in view 1 and view "
        f"{len(views)}; 3D coordinates use view 1's frame: x right, y forward, z up, metres."
    )
    messages = []
    for position, turn in enumerate(turns):
        content = [{"type": "image", "text": None} for _ in views] if position == 0 else []
        text = f"{preamble} {turn.question}" if position == 0 else turn.question
        messages.append({"role": "user", "content": [*content, {"type": "text", "text": text}]})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": turn.answer_text}]})
    width, height = views[0].image.size
    return {
        "images": images,
        "messages": messages,
        "turns": [{k: v for k, v in asdict(t).items() if k not in ("question", "answer_text")} for t in turns],
        "provenance": {
            "source": "synthetic",
            "sample_id": sample_id,
            "index": index,
            "seed": seed,
            "metric_depth": True,
            "num_views": len(views),
            "frames": chosen.frames,
            "view_ids": [view.view_id for view in views],
            "selection": selection_method,
            "anchor_covisibility": chosen.anchor_covisibility,
            "neighbour_covisibility": chosen.neighbour_covisibility,
            "lpips": chosen.lpips,
            "intrinsics": [
                {"fx": v.intrinsics.fx, "fy": v.intrinsics.fy, "cx": v.intrinsics.cx, "cy": v.intrinsics.cy}
                for v in views
            ],
            "camera_to_world": [[float(x) for x in v.camera_to_world.ravel()] for v in views],
            "image_width": width,
            "image_height": height,
            "writer": "template",
            "selection_thresholds": selection.to_dict(),
            "thresholds": thresholds.to_dict(),
            "dropped_turns": dropped,
        },
    }


class MultiviewMultiturnBuilder(ChunkedBuilder):
    """Makes the rows of consecutive samples: synthetic scene, view selection, fused objects, 12 turns."""

    features = FEATURES
    counters = ("views",)

    def __init__(self, args: MultiviewMultiturnArguments, thresholds: Thresholds):
        self.selection = args.selection_thresholds()
        self.mix = args.mix()
        self.source = SyntheticMultiviewSource(
            args.seed,
            args.num_samples,
            args.frames_per_scene,
            (args.image_width, args.image_height),
            (args.min_objects, args.max_objects),
        )
        super().__init__(args, thresholds, len(self.source))

    def example(self, index: int) -> dict:
        sequence, start = self.source.load(index)
        rng = np.random.default_rng([self.args.seed, index])
        chosen = select_views(sequence, start, views_for_index(index, self.mix), self.selection, rng)
        return build_example(
            chosen,
            sequence.sequence_id,
            index,
            self.args.seed,
            self.thresholds,
            self.selection,
            self.args.selection,
            self.args.jpeg_quality,
        )

    def count(self, row: dict) -> dict:
        return {"views": [str(row["provenance"]["num_views"])]}


def build(args: MultiviewMultiturnArguments, thresholds: Thresholds | None = None) -> dict:
    """Build this machine's share of the chunks (resuming), then manifest, card and upload; returns the manifest."""
    return run_build(
        MultiviewMultiturnBuilder, args, thresholds or args.thresholds(), make_card, "multi-view multi-turn"
    )


def make_card(args: MultiviewMultiturnArguments, thresholds: Thresholds, manifest: dict):
    license = args.data_license(synthetic=True)  # the source is always synthetic
    columns = "\n".join(f"| `{name}` | {doc} |" for name, doc in COLUMN_DOCS.items())
    settings, threshold_rows, views, skips = card_tables(args, thresholds, manifest)
    body = f"""# SpatialBoost multi-view multi-turn spatial reasoning ({args.source})

Multi-view part of the stage-3 data of [SpatialBoost](https://arxiv.org/abs/2603.22057): the 12-turn structure
(5 pixel, 4 object, 1 scene, 2 caption turns) over 2, 4 or 8 views of one scene, with cross-view questions. Built
with `dataset_builders/multiview_multiturn.py` of the SpatialBoost package:

```
spatialboost-build-multiview-multiturn --num-samples {args.num_samples} --seed {args.seed} --output-dir DIR
```

```python
from datasets import load_dataset
ds = load_dataset("{args.push_to_hub or "DIR"}", split="train")
```

## Columns

| column | content |
|---|---|
{columns}

Views: anchors with geometric covisibility in [{args.min_covisibility}, {args.max_covisibility}], frames between
them for 4 and 8 views, kept only if point 3 is seen in every view. Object cubes are fitted to the points of every
view that sees the object (world frame from the poses) and written in view 1's gravity-aligned answer frame.
Depths in metres with 3 decimals; distances under 0.5 m in centimetres; near-ties are left out.

## Counts (this build directory)

Attempted {manifest["attempted"]}, built {manifest["built"]} (yield {manifest["yield"]:.1%}); {views}.
Skipped: {skips}.

## Settings

| argument | value |
|---|---|
{settings}

| threshold | value |
|---|---|
{threshold_rows}

## Licence

Data: `{license}` (images rendered by the package).

## Citation

{publishing.CITATION}
"""
    return publishing.make_card(
        pretty_name="SpatialBoost multi-view multi-turn spatial reasoning",
        license=license,
        tags=["spatial-reasoning", "multi-view", "multi-turn", "3d", "spatialboost", args.source],
        body=body,
        num_rows=manifest["built"],
    )


def main(argv: list[str] | None = None) -> None:
    """Console entry point `spatialboost-build-multiview-multiturn` (parser and one-line errors: `spatialboost/cli.py`)."""
    from spatialboost.cli import build_multiview_multiturn

    build_multiview_multiturn(argv)


if __name__ == "__main__":
    main()
