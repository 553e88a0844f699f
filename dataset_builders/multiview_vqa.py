"""Build and publish the multi-view VQA dataset (SpatialBoost stage 2).

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057): questions across 2, 4 or 8 views of one scene,
of three kinds: common, adversarial (a false premise, answered as such) and multiple choice. The template writer
here states only what depth and camera poses give exactly, in the world frame the poses share.

```
source.load(i) -> (sequence, start) --select_views--> anchors a, b (+ frames between) --choose points on anchors-->
   --write turns on all views (kept only if every question still holds)--> row {images, messages, turns, provenance}
```

Usage (offline, exact ground truth):

    spatialboost-build-multiview-vqa --source synthetic --num-samples 1000 --seed 0 --output-dir mv-vqa --num-proc 2

A posed RGB-D sequence (Redwood / Open3D layout with `trajectory.log`): `--source posed_rgbd --input-dir DIR`; its
frames move little, so widen the band and narrow the near-tie margin
(`--min-covisibility 0.9 --max-covisibility 1.0 --depth-margin-m 0.01 --depth-margin-fraction 0`). Shards, resume and
`--push-to-hub` work as in `spatialboost-build-multiturn`.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from datasets import Features, List, Value

from . import publishing
from .arguments import MultiviewVQAArguments
from .building import ChunkedBuilder, run_build
from .frames import SkipReason, SkipSample
from .geometry import depth_edges
from .multiturn import draw_marks, marker_radius
from .questions import DEPTH_TOLERANCE_M, DISTANCE_TOLERANCE_FRACTION, Conversation, format_depth, format_distance
from .reconstruction import FrameFolderSource, VGGTBackend
from .spatial import Thresholds
from .views import (
    LpipsScorer,
    PosedRGBDSequence,
    PosedView,
    SelectionThresholds,
    SyntheticSequence,
    ViewSelection,
    select_views,
    views_for_index,
)
from .writers import LLMWriter, rewrite_turns, writer_description


QUESTION_TYPES = ("common", "adversarial", "multiple_choice")
OPTION_LETTERS = "ABCD"
# Distractor factors of multiple-choice distances: below and above the true value, at least 25 % apart, so a
# correct reading within tolerance never matches a distractor.
_SMALLER, _LARGER = (0.75, 0.55, 0.4), (1.35, 1.8, 2.4)

TURN_FEATURES = {
    "level": Value("string"),
    "kind": Value("string"),
    "question_type": Value("string"),
    "answer": Value("string"),
    "value": Value("float64"),
    "unit": Value("string"),
    "tolerance": Value("float64"),
    "options": List(Value("string")),
    "correct_option": Value("int32"),
    "points": List(List(Value("int32"))),
    "world_points": List(List(Value("float64"))),
    "views": List(Value("int32")),
}
SELECTION_NAMES = list(SelectionThresholds().to_dict())
THRESHOLD_NAMES = list(Thresholds().to_dict())
PROVENANCE_FEATURES = {
    "source": Value("string"),
    "sample_id": Value("string"),
    "index": Value("int64"),
    "seed": Value("int64"),
    "metric_depth": Value("bool"),
    "num_views": Value("int32"),
    "frames": List(Value("int32")),
    "view_ids": List(Value("string")),
    "selection": Value("string"),
    "anchor_covisibility": Value("float64"),
    "neighbour_covisibility": List(Value("float64")),
    "lpips": Value("float64"),
    "candidates": Value("int32"),
    "skipped_frames": List(Value("string")),
    "intrinsics": List(
        {"fx": Value("float64"), "fy": Value("float64"), "cx": Value("float64"), "cy": Value("float64")}
    ),
    "camera_to_world": List(List(Value("float64"))),
    "image_width": Value("int32"),
    "image_height": Value("int32"),
    "writer": Value("string"),
    "selection_thresholds": {name: Value("float64") for name in SELECTION_NAMES},
    "thresholds": {name: Value("float64") for name in THRESHOLD_NAMES},
}
FEATURES = Features(
    {
        "images": publishing.IMAGES_FEATURE,
        "messages": publishing.MESSAGES_FEATURE,
        "turns": List(TURN_FEATURES),
        "provenance": PROVENANCE_FEATURES,
    }
)

COLUMN_DOCS = {
    "images": "All views of the sample in capture order (2, 4 or 8); marked points are drawn on the first and last.",
    "messages": (
        'TRL conversational format. The first user turn starts with one `{"type": "image"}` per view, in the '
        'order of `images`, then the text; every other content part is `{"type": "text", "text": ...}`.'
    ),
    "turns": (
        "Structured truth per question: `level` (vqa), `kind` (cross_view_distance, closer_view, false_premise, "
        "multiple_choice_distance; without metric scale multiple_choice_closer_view and no distances), `question_type` (common, adversarial, multiple_choice), short `answer`, `value` "
        "in metres (distance, or depth in the view that is closer), `unit` shown, absolute `tolerance` in metres, "
        "multiple-choice `options` and `correct_option` (0-based, -1 otherwise), marked `points` as (view, u, v) "
        "with 1-based views, their `world_points` (metres, world frame of the poses) and the `views` the question "
        "compares."
    ),
    "provenance": (
        "Source, sample id, seed and index; number of views and the frames of the source sequence they are; "
        "view selection (method, anchors' covisibility, covisibility of consecutive views, LPIPS when measured, "
        "how many later frames were measured, and the reason of every frame passed over: invalid pose, missing or "
        "corrupt file, other size); "
        "per-view intrinsics and camera-to-world poses (row-major 4x4); writer; every threshold."
    ),
}


class SyntheticMultiviewSource:
    """One procedural scene per index, seen along a camera path of `num_frames` frames; anchors start at frame 0.

    Args:
        seed (`int`): Build seed; scene `i` is generated from `(seed, i)`.
        num_samples (`int`): Number of scenes.
        num_frames (`int`): Frames along each path.
        image_size (`tuple[int, int]`): `(width, height)`.
        num_objects (`tuple[int, int]`): Inclusive range of objects per scene.
    """

    name = "synthetic"
    is_metric = True

    def __init__(
        self, seed: int, num_samples: int, num_frames: int, image_size: tuple[int, int], num_objects: tuple[int, int]
    ):
        self.seed, self.num_samples, self.num_frames = seed, num_samples, num_frames
        self.image_size, self.num_objects = image_size, num_objects

    def __len__(self) -> int:
        return self.num_samples

    def load(self, index: int) -> tuple[SyntheticSequence, int]:
        scene_seed = int(np.random.SeedSequence([self.seed, index]).generate_state(1)[0])
        return SyntheticSequence.generate(scene_seed, self.num_frames, self.image_size, self.num_objects), 0


class PosedSequenceSource:
    """One posed RGB-D sequence; sample `i` starts its anchors at frame `i`.

    Args:
        sequence (`PosedRGBDSequence`): The frames.
    """

    name = "posed_rgbd"
    is_metric = True

    def __init__(self, sequence: PosedRGBDSequence):
        self.sequence = sequence

    def __len__(self) -> int:
        return max(len(self.sequence) - 1, 0)

    def load(self, index: int) -> tuple[PosedRGBDSequence, int]:
        return self.sequence, index


@dataclass
class Question:
    """One written question with its structured truth (a row of `turns` plus the text)."""

    kind: str
    question_type: str
    question: str
    answer_text: str
    answer: str
    value: float | None
    unit: str
    tolerance: float
    points: list[list[int]]
    world_points: list[list[float]]
    views: list[int]
    options: list[str]
    correct_option: int = -1


def _candidate_pixels(view: PosedView, margin: int, thresholds: Thresholds) -> np.ndarray:
    """Flat indices of pixels that can be marked: valid depth, off depth edges, `margin` pixels from the border."""
    usable = ~depth_edges(view.depth, thresholds.depth_edge_jump)
    usable[:margin] = usable[-margin:] = False
    usable[:, :margin] = usable[:, -margin:] = False
    return np.flatnonzero(usable)


@dataclass(frozen=True)
class MarkedPoint:
    """A pixel marked in one anchor view and its world point."""

    label: int
    view: int  # 0-based position in the sample
    u: int
    v: int
    world: np.ndarray


def choose_points(
    anchors: tuple[PosedView, PosedView],
    thresholds: Thresholds,
    selection: SelectionThresholds,
    rng: np.random.Generator,
    margin: int,
    last: int,
) -> list[MarkedPoint]:
    """Points 1 and 3 in the first anchor, point 2 in the last (`last` is its position in the sample).

    Point 3 is seen by both anchors (reprojection agrees with the measured depth) and its depths in the two differ
    by more than the near-tie margin, so "which view sees it closer" has a clear answer.

    Raises:
        SkipSample: `NO_POINT_PAIR` when no such points exist.
    """
    first, second = anchors
    candidates = [_candidate_pixels(view, margin, thresholds) for view in anchors]
    if min(len(c) for c in candidates) < 2:
        raise SkipSample(SkipReason.NO_POINT_PAIR, "no markable pixels in an anchor")

    def point(label: int, view_position: int, view: PosedView, flat: int) -> MarkedPoint:
        v, u = divmod(int(flat), view.depth.shape[1])
        return MarkedPoint(label, view_position, u, v, view.world_points(np.array([u]), np.array([v]))[0])

    p1 = point(1, 0, first, rng.choice(candidates[0]))
    draws = rng.choice(candidates[1], size=min(64, len(candidates[1])), replace=False)
    p2 = next(
        (p for p in (point(2, last, second, f) for f in draws) if np.linalg.norm(p.world - p1.world) > 0.2), None
    )
    if p2 is None:
        raise SkipSample(SkipReason.NO_POINT_PAIR, "no second point away from the first")
    # Of a few hundred candidates seen by both anchors, the one whose depth differs most between them.
    draws = rng.choice(candidates[0], size=min(256, len(candidates[0])), replace=False)
    best, best_gap, best_margin = None, -1.0, 0.0
    for flat in draws:
        p3 = point(3, 0, first, flat)
        if np.hypot(p3.u - p1.u, p3.v - p1.v) < 0.05 * min(first.image.size):
            continue
        if not second.sees(p3.world[None], selection)[0]:
            continue
        depths = [view.camera_points(p3.world[None])[0, 2] for view in anchors]
        if abs(depths[0] - depths[1]) > best_gap:
            best, best_gap = p3, abs(depths[0] - depths[1])
            best_margin = max(thresholds.depth_margin_m, thresholds.depth_margin_fraction * min(depths))
    if best is not None and best_gap >= best_margin:
        return [p1, p2, best]
    raise SkipSample(SkipReason.NO_POINT_PAIR, "no point seen by both anchors at clearly different depths")


def _name(point: MarkedPoint) -> str:
    return f"point {point.label} (marked in view {point.view + 1} at pixel ({point.u}, {point.v}))"


def write_questions(
    points: list[MarkedPoint],
    views: list[PosedView],
    selection: SelectionThresholds,
    rng: np.random.Generator,
    correct_option: int,
    is_metric: bool = True,
) -> list[Question]:
    """Common, adversarial and multiple-choice questions about the marked points, checked on every view.

    Without metric scale (`is_metric=False`: a reconstruction whose scale was not fixed) nothing absolute is said:
    no distances and no depths, only which view sees point 3 closer, asked as common, adversarial and multiple
    choice.

    Args:
        points (`list[MarkedPoint]`): From `choose_points` on the anchors.
        views (`list[PosedView]`): All views of the sample (anchors first and last).
        selection (`SelectionThresholds`): Visibility test.
        rng (`np.random.Generator`): Phrasings.
        correct_option (`int`): Position of the true option of the multiple-choice question (balanced by caller).
        is_metric (`bool`): Whether depths and poses are in metres.

    Raises:
        SkipSample: `EXPANSION_INVALID` when a question does not hold for the views between the anchors (point 3
            is said to be seen in every view).
    """
    p1, p2, p3 = points
    last = len(views) - 1
    seen = [bool(view.sees(p3.world[None], selection)[0]) for view in views]
    if not all(seen):
        raise SkipSample(
            SkipReason.EXPANSION_INVALID,
            f"point 3 is hidden or outside views {[i + 1 for i, s in enumerate(seen) if not s]}",
        )
    world = [[float(x) for x in p.world] for p in points]

    # Common 1: distance between points marked in different views (world frame shared through the poses).
    distance = float(np.linalg.norm(p1.world - p2.world))
    text, unit = format_distance(distance)
    q1 = Question(
        "cross_view_distance",
        "common",
        f"How far apart in 3D are {_name(p1)} and {_name(p2)}?",
        f"Point 1 and point 2 are {text} apart.",
        text,
        distance,
        unit,
        DISTANCE_TOLERANCE_FRACTION * distance,
        [[p.view + 1, p.u, p.v] for p in (p1, p2)],
        world[:2],
        [p1.view + 1, p2.view + 1],
        [],
    )

    # Common 2: which anchor sees point 3 closer (depth along each camera's optical axis).
    depths = [float(views[i].camera_points(p3.world[None])[0, 2]) for i in (0, last)]
    closer = 0 if depths[0] < depths[1] else 1
    names = (1, last + 1)
    order = ("view 1", f"view {last + 1}") if rng.integers(2) else (f"view {last + 1}", "view 1")
    q2 = Question(
        "closer_view",
        "common",
        f"{_name(p3).capitalize()} is seen in every view. Is it closer to the camera in {order[0]} or in {order[1]}?",
        f"In view {names[closer]}: its depth there is {format_depth(depths[closer])}, against "
        f"{format_depth(depths[1 - closer])} in view {names[1 - closer]}.",
        f"view {names[closer]}",
        depths[closer],
        "m",
        DEPTH_TOLERANCE_M,
        [[p3.view + 1, p3.u, p3.v]],
        world[2:],
        list(names),
        [],
    )

    # Adversarial: the premise claims the farther anchor sees point 3 closer; the answer rejects it.
    wrong, right = names[1 - closer], names[closer]
    gap_text, gap_unit = format_distance(abs(depths[0] - depths[1]))
    q3 = Question(
        "false_premise",
        "adversarial",
        f"Point 3 is closer to the camera in view {wrong} than in view {right}. By how much?",
        f"That premise is false: point 3 is closer in view {right} ({format_depth(depths[closer])}) than in view "
        f"{wrong} ({format_depth(depths[1 - closer])}), by {gap_text}.",
        "false_premise",
        abs(depths[0] - depths[1]),
        gap_unit,
        2 * DEPTH_TOLERANCE_M,
        [[p3.view + 1, p3.u, p3.v]],
        world[2:],
        list(names),
        [],
    )

    if not is_metric:
        return _relative_only(q2, q3, names, closer, correct_option)

    # Multiple choice: distance from point 3 to point 2, true option at the balanced position `correct_option`.
    distance = float(np.linalg.norm(p3.world - p2.world))
    factors = sorted(_SMALLER[:correct_option]) + [1.0] + list(_LARGER[: 3 - correct_option])
    options = [format_distance(distance * f)[0] for f in factors]
    shown, unit = format_distance(distance)
    listed = " ".join(f"({letter}) {option}" for letter, option in zip(OPTION_LETTERS, options, strict=True))
    letter = OPTION_LETTERS[correct_option]
    q4 = Question(
        "multiple_choice_distance",
        "multiple_choice",
        f"How far is point 3 from point 2? {listed}. Answer with the letter.",
        f"({letter}) {shown}.",
        letter,
        distance,
        unit,
        DISTANCE_TOLERANCE_FRACTION * distance,
        [[p.view + 1, p.u, p.v] for p in (p3, p2)],
        [world[2], world[1]],
        [p3.view + 1, p2.view + 1],
        options,
        correct_option,
    )
    return [q1, q2, q3, q4]


def _relative_only(
    common: Question, adversarial: Question, names: tuple[int, int], closer: int, correct_option: int
) -> list[Question]:
    """The scale-free questions: which anchor sees point 3 closer, without any number."""
    right, wrong = names[closer], names[1 - closer]
    common.answer_text = f"View {right} sees point 3 closer than view {wrong} does."
    adversarial.question = f"Point 3 is closer to the camera in view {wrong} than in view {right}. Why?"
    adversarial.answer_text = f"That premise is false: point 3 is closer to the camera in view {right}."
    for question in (common, adversarial):
        question.value, question.unit, question.tolerance = None, "", 0.0
    position = correct_option % 2
    options = [f"view {right}", f"view {wrong}"] if position == 0 else [f"view {wrong}", f"view {right}"]
    choice = Question(
        "multiple_choice_closer_view",
        "multiple_choice",
        f"Which view sees point 3 closer? (A) {options[0]} (B) {options[1]}. Answer with the letter.",
        f"({OPTION_LETTERS[position]}) view {right}.",
        OPTION_LETTERS[position],
        None,
        "",
        0.0,
        common.points,
        common.world_points,
        common.views,
        options,
        position,
    )
    return [common, adversarial, choice]


def key_fact(question: Question) -> str:
    """Text a rewritten answer must still contain: the value shown, the view, `false` or the option letter."""
    if question.question_type == "adversarial":
        return "false"
    if question.question_type == "multiple_choice":
        return f"({question.answer})"
    return question.answer


def build_example(
    selection_result: ViewSelection,
    source: str,
    sample_id: str,
    index: int,
    seed: int,
    thresholds: Thresholds,
    selection: SelectionThresholds,
    selection_method: str,
    jpeg_quality: int = 95,
    writer: LLMWriter | None = None,
    is_metric: bool = True,
) -> dict:
    """One dataset row from selected views (anchors first and last).

    The template writes every question from the geometry and checks it on every view; an LLM `writer`, when given,
    only rewrites the wording and must keep each answer's key fact.

    Raises:
        SkipSample: `NO_POINT_PAIR`, `EXPANSION_INVALID`, `LLM_FAILED` or `LLM_INCONSISTENT`.
    """
    rng = np.random.default_rng([seed, index, 1])
    views = selection_result.views
    last = len(views) - 1
    radius = marker_radius(views[0].image)
    points = choose_points((views[0], views[last]), thresholds, selection, rng, 3 * radius, last)
    questions = write_questions(
        points, views, selection, rng, correct_option=index % len(OPTION_LETTERS), is_metric=is_metric
    )
    if writer is not None:
        rewritten = rewrite_turns(writer, [(q.question, q.answer_text, key_fact(q)) for q in questions])
        for question, (text, answer_text) in zip(questions, rewritten, strict=True):
            question.question, question.answer_text = text, answer_text

    images = []
    for position, view in enumerate(views):
        marks = [(str(p.label), p.u, p.v) for p in points if p.view == position]
        image = draw_marks(view.image, Conversation([], marks, [], [], ""), radius) if marks else view.image
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=jpeg_quality)
        images.append({"bytes": buffer.getvalue(), "path": None})
    preamble = (
        f"These are {len(views)} views of one indoor scene, in capture order (view 1 first). Numbered points are "
        f"marked in view 1 and view {len(views)}; distances are in 3D, depths along each camera's viewing axis."
    )
    messages = []
    for position, question in enumerate(questions):
        content = [{"type": "image", "text": None} for _ in views] if position == 0 else []
        text = f"{preamble} {question.question}" if position == 0 else question.question
        messages.append({"role": "user", "content": [*content, {"type": "text", "text": text}]})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": question.answer_text}]})
    turns = [
        {"level": "vqa", **{k: v for k, v in asdict(q).items() if k not in ("question", "answer_text")}}
        for q in questions
    ]
    width, height = views[0].image.size
    return {
        "images": images,
        "messages": messages,
        "turns": turns,
        "provenance": {
            "source": source,
            "sample_id": sample_id,
            "index": index,
            "seed": seed,
            "metric_depth": is_metric,
            "num_views": len(views),
            "frames": selection_result.frames,
            "view_ids": [view.view_id for view in views],
            "selection": selection_method,
            "anchor_covisibility": selection_result.anchor_covisibility,
            "neighbour_covisibility": selection_result.neighbour_covisibility,
            "lpips": selection_result.lpips,
            "candidates": selection_result.candidates,
            "skipped_frames": [
                reason for reason, count in sorted(selection_result.skipped_frames.items()) for _ in range(count)
            ],
            "intrinsics": [
                {"fx": v.intrinsics.fx, "fy": v.intrinsics.fy, "cx": v.intrinsics.cx, "cy": v.intrinsics.cy}
                for v in views
            ],
            "camera_to_world": [[float(x) for x in v.camera_to_world.ravel()] for v in views],
            "image_width": width,
            "image_height": height,
            "writer": "template" if writer is None else f"llm:{writer.model}",
            "selection_thresholds": selection.to_dict(),
            "thresholds": thresholds.to_dict(),
        },
    }


def make_source(args: MultiviewVQAArguments, thresholds: Thresholds):
    if args.source == "frames":
        backend = VGGTBackend(args.reconstruction_model, args.reconstruction_revision, args.device)
        return FrameFolderSource(args.input_dir, args.num_frames, backend)
    if args.source == "synthetic":
        return SyntheticMultiviewSource(
            args.seed,
            args.num_samples,
            args.frames_per_scene,
            (args.image_width, args.image_height),
            (args.min_objects, args.max_objects),
        )
    if args.rgbd_layout == "scannet":
        sequence = PosedRGBDSequence.from_scannet(args.input_dir, thresholds, args.selection_thresholds())
    else:
        sequence = PosedRGBDSequence.from_redwood(args.input_dir, thresholds, args.selection_thresholds())
    return PosedSequenceSource(sequence)


class MultiviewVQABuilder(ChunkedBuilder):
    """Makes the rows of consecutive samples: source, view selection, points, questions (template or LLM).

    Args:
        args (`MultiviewVQAArguments`): Build arguments.
        thresholds (`Thresholds`): Geometric thresholds shared with the single-view builder.
    """

    features = FEATURES
    # Frames passed over while selecting views, by reason, summed over the samples that met them.
    counters = ("views", "skipped_frames")

    def __init__(self, args: MultiviewVQAArguments, thresholds: Thresholds):
        self.selection = args.selection_thresholds()
        self.mix = args.mix()
        self.lpips = LpipsScorer() if args.selection == "lpips_and_covisibility" else None
        self.writer = None
        if args.writer == "llm":
            cache = args.llm_cache_dir or str(Path(args.output_dir) / ".llm-cache")
            self.writer = LLMWriter(cache, base_url=args.llm_base_url, model=args.llm_model)
        self.source = make_source(args, thresholds)
        total = len(self.source) if args.num_samples is None else min(args.num_samples, len(self.source))
        super().__init__(args, thresholds, total)

    def example(self, index: int) -> dict:
        """Row of sample `index`, or `SkipSample`."""
        sequence, start = self.source.load(index)
        rng = np.random.default_rng([self.args.seed, index])
        num_views = views_for_index(index, self.mix)
        chosen = select_views(sequence, start, num_views, self.selection, rng, self.lpips)
        return build_example(
            chosen,
            self.source.name,
            sequence.sequence_id,
            index,
            self.args.seed,
            self.thresholds,
            self.selection,
            self.args.selection,
            self.args.jpeg_quality,
            self.writer,
            self.source.is_metric,
        )

    def count(self, row: dict) -> dict:
        return {"views": [str(row["provenance"]["num_views"])], "skipped_frames": row["provenance"]["skipped_frames"]}


def build(args: MultiviewVQAArguments, thresholds: Thresholds | None = None) -> dict:
    """Build this machine's share of the chunks (resuming past completed ones), then manifest, card and upload.

    Returns:
        `dict`: The manifest of this shard.

    Raises:
        YieldTooLowError: When built / attempted falls below `args.min_yield`.
    """
    return run_build(MultiviewVQABuilder, args, thresholds or args.thresholds(), make_card, "multi-view VQA")


def card_tables(args, thresholds: Thresholds, manifest: dict) -> tuple[str, str, str, str]:
    """Settings, thresholds, view counts and skips as markdown, shared by the multi-view cards."""
    settings = "\n".join(f"| `{k}` | `{v}` |" for k, v in asdict(args).items() if k != "push_to_hub")
    threshold_rows = "\n".join(
        f"| `{k}` | `{v}` |" for k, v in {**thresholds.to_dict(), **args.selection_thresholds().to_dict()}.items()
    )
    views = ", ".join(f"{k} views: {v}" for k, v in manifest["views"].items()) or "none"
    skips = ", ".join(f"{k}: {v}" for k, v in manifest["skipped"].items()) or "none"
    return settings, threshold_rows, views, skips


def make_card(args: MultiviewVQAArguments, thresholds: Thresholds, manifest: dict):
    """The dataset card: every column, the settings, counts and how to load."""
    license = args.data_license(synthetic=args.source == "synthetic")
    columns = "\n".join(f"| `{name}` | {doc} |" for name, doc in COLUMN_DOCS.items())
    settings, threshold_rows, views, skips = card_tables(args, thresholds, manifest)
    body = f"""# SpatialBoost multi-view VQA ({args.source})

Training data for stage 2 of [SpatialBoost](https://arxiv.org/abs/2603.22057): questions across 2, 4 or 8 views of
one scene, of three kinds: common, adversarial (a false premise, answered as such) and multiple choice (the true
option's position balanced over A-D). Built with `dataset_builders/multiview_vqa.py` of the SpatialBoost package:

```
spatialboost-build-multiview-vqa --source {args.source} --num-samples {args.num_samples} --seed {args.seed} --output-dir DIR
```

```python
from datasets import load_dataset
ds = load_dataset("{args.push_to_hub or "DIR"}", split="train")
```

## Columns

| column | content |
|---|---|
{columns}

## How views are chosen

Two anchors whose geometric covisibility (share of one view's pixels the other sees at the depth it measures,
the smaller way round) lies in [{args.min_covisibility}, {args.max_covisibility}]; selection `{args.selection}`.
4- and 8-view samples add frames evenly spaced between the anchors, and are kept only if every question still
holds (point 3 must be seen, unoccluded, in every view). Answers use depth and camera poses only: distances in
the world frame of the poses, depths along each camera's optical axis, in metres with 3 decimals (centimetres
under 0.5 m). Writer: {writer_description(args.writer, args.llm_base_url, args.llm_model)}. Mix (`views:weight`): `{args.view_mix}`.

## Counts (this build directory)

Attempted {manifest["attempted"]}, built {manifest["built"]} (yield {manifest["yield"]:.1%}); {views}.
Skipped: {skips}. Per-shard manifests with every count are in `manifests/`.

## Settings

| argument | value |
|---|---|
{settings}

| threshold | value |
|---|---|
{threshold_rows}

## Licence

Data: `{license}`. Synthetic images are rendered by the package; for other sources the input's licence applies.

## Citation

{publishing.CITATION}
"""
    return publishing.make_card(
        pretty_name=f"SpatialBoost multi-view VQA ({args.source})",
        license=license,
        tags=["spatial-reasoning", "multi-view", "vqa", "3d", "spatialboost", args.source],
        body=body,
        num_rows=manifest["built"],
    )


def main(argv: list[str] | None = None) -> None:
    """Console entry point `spatialboost-build-multiview-vqa` (parser and one-line errors: `spatialboost/cli.py`)."""
    from spatialboost.cli import build_multiview_vqa

    build_multiview_vqa(argv)


if __name__ == "__main__":
    main()
