"""The 12-turn spatial reasoning conversation: 5 pixel-level, 4 object-level, 1 scene-level and 2 caption turns.

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057), stage 3 data: each conversation walks from the
depth of marked pixels, to relations between objects' 3D cubes, to a distance between objects reasoned from the
earlier turns, and ends with captions. Every turn carries its structured truth (`TurnTruth`) so answers can be
checked and re-rendered. Conventions (pixels, answer frame, relations) are those of `dataset_builders.geometry`.

Text rules: depths in metres with 3 decimals; distances under 0.5 m in centimetres; an object is named by its
category when that category is unique in the image, otherwise by a letter drawn on it; near-ties are never asked;
yes/no and left/right style answers are balanced by a coin per question; phrasings are drawn from the seed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from .frames import SkipReason, SkipSample
from .geometry import above, centre_distance, in_front_of, left_of
from .spatial import (
    DEPTH_ORIGIN_ERRORS,
    SceneObjectEstimate,
    SpatialScene,
    Thresholds,
    cube_tolerance,
    mask_anchor,
    relation_margin,
)


ORDERS = ("forward", "reverse", "shuffled")
# Tolerances and near-tie margins per depth origin live in `spatial.DEPTH_ORIGIN_ERRORS` (each scene carries its
# own, `SpatialScene.tolerances`); these are the synthetic ones, which the multi-view builders use.
CUBE_TOLERANCE_M = max(DEPTH_ORIGIN_ERRORS["synthetic"].size_m, DEPTH_ORIGIN_ERRORS["synthetic"].centre_m)
DISTANCE_TOLERANCE_FRACTION = DEPTH_ORIGIN_ERRORS["synthetic"].distance_fraction
DEPTH_TOLERANCE_M = 0.0005  # rounding to 3 decimals

_NUMBER_WORDS = [
    "no",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
]


@dataclass
class TurnTruth:
    """Structured ground truth of one turn (one row of the `turns` column).

    Args:
        level (`str`): `pixel`, `object`, `scene` or `caption`.
        kind (`str`): `absolute_depth`, `relative_depth`, `left_right`, `above_below`, `front_behind`, `cube`,
            `distance`, `caption` or `detailed_caption`.
        question (`str`): User text of the turn.
        answer_text (`str`): Assistant text of the turn.
        answer (`str`): Short canonical answer (`yes`/`no`, `left`/`right`, ..., or the number as shown).
        value (`float`, *optional*): Numeric value in metres: the depth; the depth difference (first minus
            second point); the signed centre offset along the relation's axis (first minus second object, answer
            frame); the centre distance. `None` for cubes and captions.
        unit (`str`): Unit shown in the answer (`m`, `cm` or empty).
        tolerance (`float`): Absolute tolerance in metres on `value` (for cubes: on each metric entry of
            `vector`); for relations, the near-tie margin the offset exceeds.
        vector (`list[float]`): For cubes: centre X, Y, Z, width, length, height (metres) and yaw (degrees).
        points (`list[list[int]]`): Marked pixels `(u, v)` the turn refers to.
        objects (`list[str]`): Names of the objects the turn refers to, as written.
        object_ids (`list[int]`): Their positions in the frame's instance list.
    """

    level: str
    kind: str
    question: str
    answer_text: str
    answer: str
    value: float | None = None
    unit: str = ""
    tolerance: float = 0.0
    vector: list[float] = field(default_factory=list)
    points: list[list[int]] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)
    object_ids: list[int] = field(default_factory=list)


@dataclass
class Conversation:
    """Turns plus the marks to draw on the image.

    Args:
        turns (`list[TurnTruth]`): In the requested order.
        point_marks (`list[tuple[str, int, int]]`): `(label, u, v)` of marked pixels.
        object_marks (`list[tuple[str, int, int]]`): `(letter, u, v)` of lettered objects.
        dropped (`list[str]`): Kinds of turns left out (near-ties everywhere, or vertical without gravity).
        preamble (`str`): Text put before the first question.
    """

    turns: list[TurnTruth]
    point_marks: list[tuple[str, int, int]]
    object_marks: list[tuple[str, int, int]]
    dropped: list[str]
    preamble: str


def format_depth(metres: float) -> str:
    return f"{metres:.3f} m"


def format_distance(metres: float) -> tuple[str, str]:
    """Text and unit of a distance: centimetres under 0.5 m, else metres with 3 decimals."""
    if metres < 0.5:
        return f"{metres * 100:.1f} cm", "cm"
    return f"{metres:.3f} m", "m"


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:]


class _Namer:
    """Names objects: `the sofa` when the category is unique, `the chair marked B` (and a drawn letter) otherwise."""

    def __init__(self, objects: list[SceneObjectEstimate]):
        self.counts: dict[str, int] = {}
        for obj in objects:
            self.counts[obj.category] = self.counts.get(obj.category, 0) + 1
        self.letters: dict[int, str] = {}
        self.marks: list[tuple[str, int, int]] = []

    def __call__(self, obj: SceneObjectEstimate) -> str:
        if self.counts[obj.category] == 1:
            return f"the {obj.category}"
        if obj.index not in self.letters:
            letter = chr(ord("A") + len(self.letters))
            self.letters[obj.index] = letter
            self.marks.append((letter, *mask_anchor(obj.mask)))
        return f"the {obj.category} marked {self.letters[obj.index]}"


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _pixel_turns(
    scene: SpatialScene, thresholds: Thresholds, rng: np.random.Generator, margin_px: int
) -> tuple[list[TurnTruth], list[tuple[str, int, int]]]:
    depth = scene.depth
    height, width = depth.shape
    usable = ~scene.edges
    usable[:margin_px] = usable[-margin_px:] = False
    usable[:, :margin_px] = usable[:, -margin_px:] = False
    candidates = np.flatnonzero(usable)
    if len(candidates) < 3:
        raise SkipSample(SkipReason.NO_POINT_PAIR, "no usable pixels")
    min_separation = 0.08 * min(width, height)

    def draw(partner: tuple[int, int] | None, taken: list[tuple[int, int]]) -> tuple[int, int] | None:
        for flat in rng.choice(candidates, size=min(len(candidates), 64), replace=False):
            v, u = divmod(int(flat), width)
            if any(np.hypot(u - pu, v - pv) < min_separation for pu, pv in taken):
                continue
            if partner is not None:
                near = min(depth[v, u], depth[partner[1], partner[0]])
                margin = max(scene.tolerances.depth_margin_m, scene.tolerances.depth_margin_fraction * near)
                if abs(depth[v, u] - depth[partner[1], partner[0]]) < margin:
                    continue
            return u, v
        return None

    first = draw(None, [])
    second = draw(first, [first])
    if second is None:
        raise SkipSample(SkipReason.NO_POINT_PAIR, "no pair of points with distinct depths")
    partner_label = int(rng.integers(1, 3))
    third = draw((first, second)[partner_label - 1], [first, second])
    if third is None:
        raise SkipSample(SkipReason.NO_POINT_PAIR, "no third point with a distinct depth")
    points = {1: first, 2: second, 3: third}
    depth_at = {label: float(depth[v, u]) for label, (u, v) in points.items()}

    def absolute(label: int) -> TurnTruth:
        u, v = points[label]
        question = _pick(
            rng,
            [
                f"What is the depth of point {label} at pixel ({u}, {v})?",
                f"How far from the camera, along its viewing axis, is the point marked {label} at ({u}, {v})?",
                f"Estimate the depth in metres at point {label}, pixel ({u}, {v}).",
            ],
        )
        shown = format_depth(depth_at[label])
        answer = _pick(rng, [f"Point {label} is {shown} from the camera.", f"The depth at point {label} is {shown}."])
        return TurnTruth(
            "pixel",
            "absolute_depth",
            question,
            answer,
            f"{depth_at[label]:.3f}",
            depth_at[label],
            "m",
            DEPTH_TOLERANCE_M,
            points=[[u, v]],
        )

    def relative(a: int, b: int) -> TurnTruth:
        # Balance: pick the wording and the wanted answer, then order the two points so the answer comes out.
        closer_word = bool(rng.integers(2))
        want_yes = bool(rng.integers(2))
        a_closer = depth_at[a] < depth_at[b]
        if (a_closer == closer_word) != want_yes:
            a, b = b, a
        word = "closer to" if closer_word else "farther from"
        question = _pick(
            rng,
            [
                f"Is point {a} {word} the camera than point {b}?",
                f"Comparing the marked points, is point {a} {word} the camera than point {b}?",
            ],
        )
        gap_text, gap_unit = format_distance(abs(depth_at[a] - depth_at[b]))
        relation = "closer" if depth_at[a] < depth_at[b] else "farther"
        answer = (
            f"{'Yes' if want_yes else 'No'}. Point {a} is at {format_depth(depth_at[a])} and point {b} at "
            f"{format_depth(depth_at[b])}, so point {a} is {gap_text} {relation}."
        )
        return TurnTruth(
            "pixel",
            "relative_depth",
            question,
            answer,
            "yes" if want_yes else "no",
            depth_at[a] - depth_at[b],
            gap_unit,
            DEPTH_TOLERANCE_M * 2,
            points=[list(points[a]), list(points[b])],
        )

    turns = [absolute(1), absolute(2), relative(1, 2), absolute(3), relative(3, partner_label)]
    return turns, [(str(label), u, v) for label, (u, v) in points.items()]


# (kind, predicate, word when true, word when false, short answers, choice question templates)
_RELATIONS = (
    (
        "left_right",
        left_of,
        "to the left of",
        "to the right of",
        ("left", "right"),
        ["Is {a} to the left or to the right of {b}?", "Seen from the camera, is {a} left or right of {b}?"],
    ),
    (
        "above_below",
        above,
        "above",
        "below",
        ("above", "below"),
        ["Is {a} above or below {b}?", "Is {a} higher or lower than {b}?"],
    ),
    (
        "front_behind",
        in_front_of,
        "in front of",
        "behind",
        ("in front", "behind"),
        ["Is {a} in front of or behind {b}?", "Seen from the camera, is {a} in front of {b} or behind it?"],
    ),
)
_AXIS = {"left_right": 0, "front_behind": 1, "above_below": 2}


def _relation_turn(
    kind: str,
    predicate,
    true_word: str,
    false_word: str,
    shorts: tuple[str, str],
    templates: list[str],
    pair: tuple[SceneObjectEstimate, SceneObjectEstimate],
    name: _Namer,
    margin: float,
    rng: np.random.Generator,
) -> TurnTruth:
    a, b = pair
    yes_no = bool(rng.integers(2))
    if yes_no:
        asked_true_word = bool(rng.integers(2))
        want_yes = bool(rng.integers(2))
        if (predicate(a.cube, b.cube, margin) == asked_true_word) != want_yes:
            a, b = b, a
        word = true_word if asked_true_word else false_word
        question = f"Is {name(a)} {word} {name(b)}?"
        short = "yes" if want_yes else "no"
    else:
        want_true = bool(rng.integers(2))
        if predicate(a.cube, b.cube, margin) != want_true:
            a, b = b, a
        question = _pick(rng, templates).format(a=name(a), b=name(b))
        short = shorts[0] if want_true else shorts[1]
    holds = predicate(a.cube, b.cube, margin)
    offset = float(a.cube.center[_AXIS[kind]] - b.cube.center[_AXIS[kind]])
    gap_text, gap_unit = format_distance(abs(offset))
    statement = f"{name(a)} is {true_word if holds else false_word} {name(b)}, by about {gap_text} between centres."
    answer = f"{'Yes' if short == 'yes' else 'No'}, {statement}" if yes_no else _sentence(statement)
    return TurnTruth(
        "object",
        kind,
        question,
        answer,
        short,
        offset,
        gap_unit,
        margin,
        objects=[name(a), name(b)],
        object_ids=[a.index, b.index],
    )


def _cube_turn(obj: SceneObjectEstimate, name: _Namer, rng: np.random.Generator, tolerance: float) -> TurnTruth:
    cube = obj.cube
    x, y, z = cube.center
    w, length, h = cube.size
    yaw = float(np.degrees(cube.yaw))
    question = _pick(
        rng,
        [
            f"What is the 3D bounding cube of {name(obj)}?",
            f"Describe the oriented 3D box around {name(obj)}.",
            f"Give the centre, size and orientation of the bounding cube of {name(obj)}.",
        ],
    )
    answer = (
        f"The cube of {name(obj)} is centred at (x, y, z) = ({x:.3f}, {y:.3f}, {z:.3f}) m; it is {w:.3f} m wide, "
        f"{length:.3f} m long and {h:.3f} m high, turned {yaw:.0f}° about the vertical axis."
    )
    vector = [float(x), float(y), float(z), float(w), float(length), float(h), yaw]
    return TurnTruth(
        "object",
        "cube",
        question,
        answer,
        f"({x:.3f}, {y:.3f}, {z:.3f})",
        None,
        "m",
        tolerance,
        vector=vector,
        objects=[name(obj)],
        object_ids=[obj.index],
    )


def _distance_turn(
    a: SceneObjectEstimate, b: SceneObjectEstimate, name: _Namer, rng: np.random.Generator, fraction: float
) -> TurnTruth:
    distance = centre_distance(a.cube, b.cube)
    question = _pick(
        rng,
        [
            f"How far is {name(a)} from {name(b)}, centre to centre?",
            f"What is the distance between the centres of {name(a)} and {name(b)}?",
            f"Using the cubes, how far apart are {name(a)} and {name(b)}?",
        ],
    )
    delta = b.cube.center - a.cube.center
    text, unit = format_distance(distance)
    (ax, ay, az), (bx, by, bz) = a.cube.center, b.cube.center
    answer = (
        f"{_sentence(name(a))} is centred at ({ax:.3f}, {ay:.3f}, {az:.3f}) m, as its cube showed, and {name(b)} "
        f"at ({bx:.3f}, {by:.3f}, {bz:.3f}) m. The offsets are {delta[0]:+.3f}, {delta[1]:+.3f} and "
        f"{delta[2]:+.3f} m, so the distance is the square root of their squares summed: {text}."
    )
    return TurnTruth(
        "scene",
        "distance",
        question,
        answer,
        text,
        distance,
        unit,
        fraction * distance,
        objects=[name(a), name(b)],
        object_ids=[a.index, b.index],
    )


def plural(noun: str) -> str:
    """English plural of a category name: "box" -> "boxes", "bench" -> "benches", "chair" -> "chairs"."""
    return noun + ("es" if noun.endswith(("s", "x", "z", "ch", "sh")) else "s")


def _objects_caption(objects: list[SceneObjectEstimate]) -> str:
    counts: dict[str, int] = {}
    for obj in objects:
        counts[obj.category] = counts.get(obj.category, 0) + 1
    parts = [
        (f"{'an' if cat[0] in 'aeiou' else 'a'} {cat}" if n == 1 else f"{_NUMBER_WORDS[min(n, 12)]} {plural(cat)}")
        for cat, n in sorted(counts.items())
    ]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"An indoor scene with {listed}."


def _layout_caption(objects: list[SceneObjectEstimate], name: _Namer) -> str:
    placed = sorted((o for o in objects if o.eligible), key=lambda o: o.cube.center[0])
    where = [f"{name(o)} about {format_distance(float(np.hypot(*o.cube.center[:2])))[0]} away" for o in placed]
    return f"{_objects_caption(objects)} From left to right: {'; '.join(where)}."


def write_conversation(
    scene: SpatialScene,
    thresholds: Thresholds,
    rng: np.random.Generator,
    order: str = "forward",
    captions: tuple[str, str] | None = None,
    marker_radius: int = 6,
) -> Conversation:
    """Write the 12 turns for one analysed image.

    Args:
        scene (`SpatialScene`): Output of `dataset_builders.spatial.analyse`.
        thresholds (`Thresholds`): Near-tie margins.
        rng (`np.random.Generator`): Chooses points, pairs, phrasings and balanced answers.
        order (`str`): `forward` (pixel, object, scene, caption), `reverse` or `shuffled`.
        captions (`tuple[str, str]`, *optional*): Brief and detailed captions from a captioner; written from the
            objects when `None`.
        marker_radius (`int`): Radius of the drawn point marks; pixel questions stay this far from the border.

    Raises:
        SkipSample: `NO_POINT_PAIR` or `NO_OBJECT_PAIR`.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    pixel_turns, point_marks = _pixel_turns(scene, thresholds, rng, margin_px=3 * marker_radius)

    name = _Namer(scene.objects)
    eligible = [o for o in scene.objects if o.eligible]
    pairs = list(itertools.combinations(eligible, 2))
    rng.shuffle(pairs)
    object_turns, dropped, used_pairs = [], [], []
    for kind, predicate, true_word, false_word, shorts, templates in _RELATIONS:
        if kind == "above_below" and not scene.frame.aligned:
            dropped.append(kind)
            continue
        pair = next(
            (p for p in pairs if predicate(p[0].cube, p[1].cube, relation_margin(scene, kind, *p)) is not None), None
        )
        if pair is None:
            dropped.append(kind)
            continue
        margin = relation_margin(scene, kind, *pair)
        used_pairs.append(pair)
        object_turns.append(
            _relation_turn(kind, predicate, true_word, false_word, shorts, templates, pair, name, margin, rng)
        )
    # Cube and distance state centres and sizes, so they use measurable objects only, preferably the pair of the
    # first relation so that the rationale builds on it.
    measurable = [o for o in eligible if o.measurable]
    preferred = [o for pair in used_pairs[:1] for o in pair if o.measurable]
    cube_object = (preferred or measurable or [None])[0]
    if cube_object is None:
        dropped.append("cube")
    else:
        object_turns.append(_cube_turn(cube_object, name, rng, cube_tolerance(scene, cube_object)))
    partners = [o for o in preferred[1:] + measurable if o is not cube_object]
    if cube_object is None or not partners:
        dropped.append("distance")
        scene_turns = []
    else:
        scene_turns = [_distance_turn(cube_object, partners[0], name, rng, scene.tolerances.distance_fraction)]
    if not object_turns:
        raise SkipSample(SkipReason.NO_OBJECT_PAIR, "every pair of objects is a near-tie")

    # A captioner may return an empty string (a failed generation); the objects still describe the scene.
    captions = (
        (captions[0] if captions and captions[0] else _objects_caption(scene.objects)),
        (captions[1] if captions and captions[1] else _layout_caption(scene.objects, name)),
    )
    caption_turns = [
        TurnTruth(
            "caption",
            "caption",
            _pick(rng, ["Describe the image in one sentence.", "What does this image show?"]),
            captions[0],
            captions[0],
        ),
        TurnTruth(
            "caption",
            "detailed_caption",
            _pick(rng, ["Describe the scene in detail.", "Give a detailed description of the scene."]),
            captions[1],
            captions[1],
        ),
    ]
    turns = pixel_turns + object_turns + scene_turns + caption_turns
    if order == "reverse":
        turns = turns[::-1]
    elif order == "shuffled":
        turns = [turns[i] for i in rng.permutation(len(turns))]

    frame_text = (
        "x to the right, y forward and z up"
        if scene.frame.aligned
        else "the camera's axes: x to the right, y forward along the optical axis and z up in the image"
    )
    preamble = (
        "Numbers mark points and letters mark objects; pixel coordinates (u, v) count from the top-left corner of "
        f"this image. 3D answers are in metres, in a frame centred on the camera with {frame_text}."
    )
    return Conversation(turns, point_marks, name.marks, dropped, preamble)
