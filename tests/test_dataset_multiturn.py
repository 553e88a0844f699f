"""Every answer of the 12-turn conversations against the synthetic scenes' exact truth, plus the text rules."""

import collections
import io

import numpy as np
import pytest
from dataset_fixtures import assistant_texts, numbers, synthetic_samples, user_texts
from PIL import Image

from dataset_builders.geometry import centre_distance
from dataset_builders.questions import CUBE_TOLERANCE_M, DISTANCE_TOLERANCE_FRACTION


SEED, COUNT = 7, 40
PREDICATES = ("left_right", "above_below", "front_behind")
TRUE_ANSWER = {"left_right": "left", "above_below": "above", "front_behind": "in front"}
FALSE_ANSWER = {"left_right": "right", "above_below": "below", "front_behind": "behind"}


@pytest.fixture(scope="module")
def samples():
    return [s for s in synthetic_samples(SEED, COUNT) if s.row is not None]


def test_yield_and_turn_layout(samples):
    assert len(samples) >= 0.75 * COUNT
    full = 0
    for sample in samples:
        levels = [t["level"] for t in sample.row["turns"]]
        kinds = [t["kind"] for t in sample.row["turns"]]
        dropped = sample.row["provenance"]["dropped_turns"]
        n_object, n_scene = levels.count("object"), levels.count("scene")
        # Forward order: 5 pixel, object (relations that are not near-ties, then the cube), scene, 2 captions.
        assert levels == ["pixel"] * 5 + ["object"] * n_object + ["scene"] * n_scene + ["caption"] * 2
        assert kinds[:5] == ["absolute_depth", "absolute_depth", "relative_depth", "absolute_depth", "relative_depth"]
        assert len(levels) + len(dropped) == 12 and n_object >= 1
        assert ("cube" in kinds) != ("cube" in dropped) and ("distance" in kinds) != ("distance" in dropped)
        if "cube" in kinds:
            assert kinds.index("cube") == 4 + n_object
        full += len(levels) == 12
    assert full >= len(samples) // 2


def test_pixel_answers_equal_rendered_depth(samples):
    checked = 0
    for sample in samples:
        texts = assistant_texts(sample.row)
        for turn, text in zip(sample.row["turns"], texts, strict=True):
            if turn["kind"] == "absolute_depth":
                ((u, v),) = turn["points"]
                truth = float(sample.rendering.depth[v, u])
                assert abs(turn["value"] - truth) <= turn["tolerance"]
                assert f"{truth:.3f} m" in text and turn["answer"] == f"{truth:.3f}"
                checked += 1
            elif turn["kind"] == "relative_depth":
                (ua, va), (ub, vb) = turn["points"]
                da, db = float(sample.rendering.depth[va, ua]), float(sample.rendering.depth[vb, ub])
                assert turn["value"] == pytest.approx(da - db, abs=turn["tolerance"])
                question = user_texts(sample.row)[sample.row["turns"].index(turn)]
                asks_closer = "closer" in question
                assert turn["answer"] == ("yes" if (da < db) == asks_closer else "no")
                assert abs(da - db) >= 0.05  # near-ties are never asked
    assert checked == 3 * len(samples)


def test_point_coordinates_in_text_and_drawn(samples):
    for sample in samples[:10]:
        users = user_texts(sample.row)
        image = np.asarray(Image.open(io.BytesIO(sample.row["images"][0]["bytes"])).convert("RGB"), dtype=int)
        original = np.asarray(sample.frame.image, dtype=int)
        for turn, question in zip(sample.row["turns"], users, strict=True):
            if turn["kind"] == "absolute_depth":
                ((u, v),) = turn["points"]
                assert f"({u}, {v})" in question
                # The mark is red at the exact pixel on the stored image (JPEG: approximately).
                r, g, b = image[v, u]
                assert r > 180 and g < 90 and b < 90 and np.abs(image[v, u] - original[v, u]).sum() > 60


def test_relations_match_truth(samples):
    checked = collections.Counter()
    for sample in samples:
        for turn in sample.row["turns"]:
            if turn["kind"] not in PREDICATES:
                continue
            truth = sample.world_relation(turn["kind"], *turn["object_ids"])
            if turn["answer"] in ("yes", "no"):
                continue  # checked below with the question's wording
            assert turn["answer"] == (TRUE_ANSWER if truth else FALSE_ANSWER)[turn["kind"]]
            checked[turn["kind"]] += 1
        for turn, question in zip(sample.row["turns"], user_texts(sample.row), strict=True):
            if turn["kind"] in PREDICATES and turn["answer"] in ("yes", "no"):
                truth = sample.world_relation(turn["kind"], *turn["object_ids"])
                word_true = {"left_right": "to the left of", "above_below": " above ", "front_behind": "in front of"}
                asks_true_word = word_true[turn["kind"]] in question
                assert turn["answer"] == ("yes" if truth == asks_true_word else "no")
                checked[turn["kind"]] += 1
            if turn["kind"] in PREDICATES:
                first, second = (sample.true_cube(i) for i in turn["object_ids"])
                true_offset = first.center - second.center
                axis = {"left_right": 0, "front_behind": 1, "above_below": 2}[turn["kind"]]
                assert abs(turn["value"] - true_offset[axis]) < 0.06
                assert abs(turn["value"]) >= turn["tolerance"]
    assert all(checked[kind] >= 5 for kind in PREDICATES), checked


def test_cubes_within_tolerance_of_truth(samples):
    cubes = [(s, t) for s in samples for t in s.row["turns"] if t["kind"] == "cube"]
    assert len(cubes) >= 0.8 * len(samples)
    for sample, turn in cubes:
        truth = sample.true_cube(turn["object_ids"][0])
        x, y, z, w, length, h, yaw = turn["vector"]
        assert turn["tolerance"] == CUBE_TOLERANCE_M
        np.testing.assert_allclose([x, y, z], truth.center, atol=turn["tolerance"])
        assert abs(h - truth.size[2]) <= turn["tolerance"]
        # Width and length swap when the yaw wraps around 0/90 degrees; the box is the same.
        same = np.abs(np.array([w, length]) - truth.size[:2]).max()
        swapped = np.abs(np.array([length, w]) - truth.size[:2]).max()
        assert min(same, swapped) <= turn["tolerance"]
        if abs(truth.size[0] - truth.size[1]) > 0.15:
            assert abs((yaw - np.degrees(truth.yaw) + 45) % 90 - 45) < 3.0


def test_distances_within_two_percent(samples):
    distances = [(s, t) for s in samples for t in s.row["turns"] if t["kind"] == "distance"]
    assert len(distances) >= 0.7 * len(samples)
    for sample, turn in distances:
        truth = centre_distance(*(sample.true_cube(i) for i in turn["object_ids"]))
        assert turn["tolerance"] == pytest.approx(DISTANCE_TOLERANCE_FRACTION * turn["value"])
        assert abs(turn["value"] - truth) <= DISTANCE_TOLERANCE_FRACTION * truth
        text = assistant_texts(sample.row)[sample.row["turns"].index(turn)]
        shown = text.rsplit(": ", 1)[1]
        if turn["value"] < 0.5:
            assert turn["unit"] == "cm" and shown == f"{turn['value'] * 100:.1f} cm."
        else:
            assert turn["unit"] == "m" and shown == f"{turn['value']:.3f} m."
        # The rationale restates the cube of the earlier turn.
        cube_text = assistant_texts(sample.row)[[t["kind"] for t in sample.row["turns"]].index("cube")]
        assert numbers(cube_text)[:3] == numbers(text)[:3]


def test_numbers_formatting_rules(samples):
    for sample in samples:
        for turn, text in zip(sample.row["turns"], assistant_texts(sample.row), strict=True):
            if turn["kind"] == "absolute_depth":
                assert any(len(n.split(".")[1]) == 3 for n in text.replace(" m", " ").split() if "." in n)
            if turn["kind"] in PREDICATES or turn["kind"] == "relative_depth":
                gap = abs(turn["value"])
                assert turn["unit"] == ("cm" if gap < 0.5 else "m")
                assert (f"{gap * 100:.1f} cm" if gap < 0.5 else f"{gap:.3f} m") in text


def test_answers_are_balanced_and_phrasings_vary():
    samples = [s for s in synthetic_samples(SEED, COUNT) if s.row is not None]
    answers = collections.Counter()
    phrasings = collections.defaultdict(set)
    for sample in samples:
        for turn, question in zip(sample.row["turns"], user_texts(sample.row), strict=True):
            answers[turn["answer"]] += 1
            phrasings[turn["kind"]].add(
                question.split(" ")[0] + question.split(" ")[-1][-1] + str(len(question) // 40)
            )
    yes, no = answers["yes"], answers["no"]
    assert yes + no > 60 and 0.35 < yes / (yes + no) < 0.65
    left, right = answers["left"], answers["right"]
    assert left + right >= 5 and min(left, right) >= 2
    assert all(len(phrasings[kind]) >= 2 for kind in ("absolute_depth", "cube", "distance"))


def test_names_are_unambiguous_and_letters_drawn(samples):
    lettered = 0
    for sample in samples:
        counts = collections.Counter(inst.category for inst in sample.frame.instances)
        for turn in sample.row["turns"]:
            for name, object_id in zip(turn["objects"], turn["object_ids"], strict=True):
                category = sample.frame.instances[object_id].category
                if counts[category] == 1:
                    assert name == f"the {category}"
                else:
                    assert name.startswith(f"the {category} marked ") and len(name.split()[-1]) == 1
                    lettered += 1
        # One letter per object, never reused.
        letters = {}
        for turn in sample.row["turns"]:
            for name, object_id in zip(turn["objects"], turn["object_ids"], strict=True):
                if " marked " in name:
                    assert letters.setdefault(name.split()[-1], object_id) == object_id
    assert lettered > 0


def test_orders_permute_the_same_turns():
    forward = [s.row for s in synthetic_samples(SEED, 4) if s.row is not None]
    reverse = [s.row for s in synthetic_samples(SEED, 4, "reverse") if s.row is not None]
    shuffled = [s.row for s in synthetic_samples(SEED, 4, "shuffled") if s.row is not None]
    for f, r, s in zip(forward, reverse, shuffled, strict=True):
        assert r["turns"] == f["turns"][::-1]
        assert sorted(map(str, s["turns"])) == sorted(map(str, f["turns"])) and s["turns"] != f["turns"]
        assert r["messages"][0]["content"][0] == {"type": "image", "text": None}


def test_messages_follow_trl_conversational_format(samples):
    for sample in samples:
        messages = sample.row["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"] * len(sample.row["turns"])
        parts = [c for m in messages for c in m["content"]]
        assert sum(c["type"] == "image" for c in parts) == len(sample.row["images"]) == 1
        assert messages[0]["content"][0]["type"] == "image"
        assert all(c["type"] == "text" and c["text"] for c in parts if c["type"] != "image")


def test_category_plurals():
    from dataset_builders.questions import plural

    assert [plural(c) for c in ("box", "bench", "chair", "glass")] == ["boxes", "benches", "chairs", "glasses"]
