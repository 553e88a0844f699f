"""Throughput of the multi-turn builder's CPU stages and of the synthetic renderer, per core.

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057). Scenes are 640x480 with 8-12 objects. The CPU
stages are geometry (gravity frame, object clouds, cubes) and question writing (with marks drawn and the image
encoded); perception is excluded: synthetic frames carry exact depth and masks. Everything runs in one process
with one thread, so the figures are per core. Target: >= 20 samples/s per core for the CPU stages.

    python benchmarks/bench_multiturn.py [--scenes 60] [--seed 0]
"""

import os


# One thread per process, so that the figures are per core.
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from dataset_builders.frames import SkipSample  # noqa: E402
from dataset_builders.multiturn import build_example  # noqa: E402
from dataset_builders.questions import write_conversation  # noqa: E402
from dataset_builders.sources import SyntheticSource  # noqa: E402
from dataset_builders.spatial import Thresholds, analyse  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    source = SyntheticSource(args.seed, args.scenes)
    thresholds = Thresholds()

    start = time.perf_counter()
    frames = [source.load(i) for i in range(args.scenes)]  # scene generation + ray casting + masks
    render_seconds = time.perf_counter() - start
    objects = [len(source.scene(i).objects) for i in range(min(args.scenes, 20))]

    start = time.perf_counter()
    scenes = []
    for index, frame in enumerate(frames):
        try:
            scenes.append((index, analyse(frame, thresholds, np.random.default_rng([args.seed, index]))))
        except SkipSample:
            pass
    geometry_seconds = time.perf_counter() - start

    start = time.perf_counter()
    for index, scene in scenes:
        try:
            write_conversation(scene, thresholds, np.random.default_rng([args.seed, index, 1]))
        except SkipSample:
            pass
    writing_seconds = time.perf_counter() - start

    built = 0
    start = time.perf_counter()
    for index, frame in enumerate(frames):
        try:
            build_example(frame, index, args.seed, "forward", thresholds)
            built += 1
        except SkipSample:
            pass
    example_seconds = time.perf_counter() - start

    n = args.scenes
    print(
        f"machine: {platform.processor() or platform.machine()}, 1 process, 1 thread; {n} scenes 640x480, "
        f"{min(objects)}-{max(objects)} objects"
    )
    print(f"renderer (scene + RGB, depth, masks):           {n / render_seconds:7.1f} views/s per core")
    print(f"geometry only (gravity, clouds, cubes):         {n / geometry_seconds:7.1f} samples/s per core")
    print(f"question writing only (12 turns):               {len(scenes) / writing_seconds:7.1f} samples/s per core")
    print(
        f"CPU stages per sample (geometry + questions + marks + JPEG): {n / example_seconds:7.1f} samples/s per core "
        f"(target >= 20; {built}/{n} built, the rest typed skips)"
    )
    print(
        f"end to end without perception (render + CPU stages): "
        f"{n / (render_seconds + example_seconds):7.1f} samples/s per core"
    )


if __name__ == "__main__":
    main()
