"""Shared helpers of the dataset builder tests: cached synthetic samples with their ground truth, data paths."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataset_builders.frames import Frame, SkipSample
from dataset_builders.geometry import Cube
from dataset_builders.multiturn import build_example
from dataset_builders.scenes import Rendering, Scene
from dataset_builders.sources import SyntheticSource
from dataset_builders.spatial import Thresholds


RGBD_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "rgbd"
NUMBER = re.compile(r"-?\d+\.\d+")


@dataclass
class SyntheticSample:
    """A built row with the scene it came from and the truth needed to check it."""

    index: int
    scene: Scene
    rendering: Rendering
    frame: Frame
    row: dict | None
    truth_cubes: list[Cube]  # aligned with frame.instances

    def true_cube(self, object_id: int) -> Cube:
        return self.truth_cubes[object_id]

    def world_relation(self, kind: str, first: int, second: int) -> bool:
        """Truth of "first is left of / above / in front of second" from world coordinates and the camera pose."""
        visible = [int(i) for i in np.unique(self.rendering.instances) if i != 0]
        a, b = (self.scene.objects[visible[i] - 1] for i in (first, second))
        forward = self.rendering.camera_to_world[:3, 2] * np.array([1.0, 1.0, 0.0])
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        offset = a.center - b.center
        return {"left_right": offset @ right < 0, "front_behind": offset @ forward < 0, "above_below": offset[2] > 0}[
            kind
        ]


@functools.lru_cache(maxsize=4)
def synthetic_samples(seed: int, count: int, order: str = "forward") -> tuple[SyntheticSample, ...]:
    """Build `count` synthetic rows (skipped ones have `row=None`); cached across tests."""
    source = SyntheticSource(seed, count)
    samples = []
    for index in range(count):
        scene = source.scene(index)
        rendering = scene.render(0)
        frame = source.load(index)
        visible_ids = [int(i) for i in np.unique(rendering.instances) if i != 0]
        all_cubes = scene.answer_frame_cubes(0)
        truth = [all_cubes[instance_id - 1] for instance_id in visible_ids]
        try:
            row = build_example(frame, index, seed, order, Thresholds())
        except SkipSample:
            row = None
        samples.append(SyntheticSample(index, scene, rendering, frame, row, truth))
    return tuple(samples)


def numbers(text: str) -> list[float]:
    return [float(x) for x in NUMBER.findall(text)]


def assistant_texts(row: dict) -> list[str]:
    return [m["content"][0]["text"] for m in row["messages"] if m["role"] == "assistant"]


def user_texts(row: dict) -> list[str]:
    return [
        next(c["text"] for c in m["content"] if c["type"] == "text") for m in row["messages"] if m["role"] == "user"
    ]
