"""Throughput of the multi-view builders' CPU stages on synthetic scenes, per core.

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057). Each sample is one procedural scene seen along a
camera path of 12 frames. Stages: rendering the path (the synthetic stand-in for reading frames), view selection
(covisibility of the first frame with every later one, then of consecutive chosen views), and writing (points,
object fusion for multi-turn, questions checked on every view, marks drawn, JPEG encoding). Everything runs in one
process with one thread, so the figures are per core. The view mix is the paper's (160:30:10).

    python benchmarks/bench_multiview.py [--scenes 40] [--width 640 --height 480] [--seed 0]
"""

import os


# One thread per process, so that the figures are per core.
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

import numpy as np  # noqa: E402

from dataset_builders import multiview_multiturn, multiview_vqa  # noqa: E402
from dataset_builders.frames import SkipSample  # noqa: E402
from dataset_builders.multiview_vqa import SyntheticMultiviewSource  # noqa: E402
from dataset_builders.spatial import Thresholds  # noqa: E402
from dataset_builders.views import DEFAULT_VIEW_MIX, SelectionThresholds, select_views, views_for_index  # noqa: E402


def run(name: str, build_example, source: SyntheticMultiviewSource, seed: int) -> None:
    thresholds, selection = Thresholds(), SelectionThresholds()
    seconds, built, skipped, views = Counter(), 0, Counter(), Counter()
    for index in range(len(source)):
        sequence, start = source.load(index)
        tick = time.perf_counter()
        for frame in range(len(sequence)):
            sequence.view(frame)
        seconds["render"] += time.perf_counter() - tick
        tick = time.perf_counter()
        try:
            rng = np.random.default_rng([seed, index])
            chosen = select_views(sequence, start, views_for_index(index, DEFAULT_VIEW_MIX), selection, rng)
        except SkipSample as skip:
            seconds["select"] += time.perf_counter() - tick
            skipped[skip.reason.value] += 1
            continue
        seconds["select"] += time.perf_counter() - tick
        tick = time.perf_counter()
        try:
            build_example(chosen, sequence.sequence_id, index, seed, thresholds, selection, "covisibility")
            built += 1
            views[len(chosen.views)] += 1
        except SkipSample as skip:
            skipped[skip.reason.value] += 1
        seconds["write"] += time.perf_counter() - tick
    n = len(source)
    cpu = seconds["select"] + seconds["write"]
    print(f"\n{name}: {n} scenes, built {built} ({dict(sorted(views.items()))} views), skipped {dict(skipped)}")
    print(f"  render path (12 frames)  {n / seconds['render']:7.2f} samples/s per core")
    print(f"  view selection           {n / seconds['select']:7.2f} samples/s per core")
    print(f"  question writing         {n / seconds['write']:7.2f} samples/s per core")
    print(f"  CPU stages (select+write){n / cpu:7.2f} samples/s per core")
    print(f"  end to end with render   {n / (cpu + seconds['render']):7.2f} samples/s per core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, one thread")
    print(f"images {args.width}x{args.height}, view mix {DEFAULT_VIEW_MIX}")
    builders = (
        ("multi-view VQA", lambda chosen, *rest: multiview_vqa.build_example(chosen, "synthetic", *rest)),
        ("multi-view multi-turn", multiview_multiturn.build_example),
    )
    for name, build_example in builders:
        source = SyntheticMultiviewSource(args.seed, args.scenes, 12, (args.width, args.height), (8, 12))
        run(name, build_example, source, args.seed)


if __name__ == "__main__":
    main()
