"""Time and peak memory of view selection on a long synthetic sequence (a 2,000-frame hand-held-like scan).

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057). `views.select_views` streams: later frames are
checked against the anchor with their poses alone, at most `max_candidates` of them are decoded (rendered here)
and measured, and the sequence keeps at most `MAX_CACHED_VIEWS` decoded views. For comparison the exhaustive
variant (every later frame measured, every decoded view kept: what selection did before) runs on a prefix of the
sequence, since on the whole of it one anchor would render all 2,000 frames and hold them in memory.

    python benchmarks/bench_view_selection.py [--frames 2000] [--anchors 12] [--exhaustive-frames 150]

Memory is the peak of Python and numpy allocations (tracemalloc) during selection; the last line printed is a JSON
object with the figures.
"""

from __future__ import annotations

import os


for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset_builders.frames import SkipSample  # noqa: E402
from dataset_builders.views import MAX_CACHED_VIEWS, SelectionThresholds, SyntheticSequence, select_views  # noqa: E402


class CountingSequence:
    """A synthetic sequence that counts how many frames it renders."""

    def __init__(self, sequence: SyntheticSequence):
        self.sequence, self.renders = sequence, 0

    def __len__(self) -> int:
        return len(self.sequence)

    def camera(self, frame: int):
        return self.sequence.camera(frame)

    def view(self, frame: int):
        if self.sequence.cache.get(frame) is None:
            self.renders += 1
        return self.sequence.view(frame)


def run(sequence: CountingSequence, starts: list[int], thresholds: SelectionThresholds) -> dict:
    tracemalloc.start()
    seconds, built, candidates, skipped = [], 0, [], {}
    for index, start in enumerate(starts):
        rng = np.random.default_rng([0, index])
        began = time.perf_counter()
        try:
            chosen = select_views(sequence, start, (2, 4, 8)[index % 3], thresholds, rng)
            built += 1
            candidates.append(chosen.candidates)
        except SkipSample as skip:
            skipped[skip.reason.value] = skipped.get(skip.reason.value, 0) + 1
        seconds.append(time.perf_counter() - began)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "selections": len(starts),
        "built": built,
        "skipped": skipped,
        "seconds_per_selection": float(np.mean(seconds)),
        "seconds_per_selection_max": float(np.max(seconds)),
        "peak_memory_mib": peak / 2**20,
        "renders": sequence.renders,
        "cached_views": len(sequence.sequence.cache),
        "candidates_max": max(candidates, default=0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--anchors", type=int, default=12)
    parser.add_argument("--exhaustive-frames", type=int, default=150)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    size = (args.width, args.height)
    thresholds = SelectionThresholds()

    sequence = CountingSequence(SyntheticSequence.generate(args.seed, args.frames, size, (6, 9)))
    # Anchors spread over the first half of the scan, so partners exist at every view count.
    starts = [int(s) for s in np.linspace(0, args.frames // 2, args.anchors)]
    streaming = run(sequence, starts, thresholds)

    prefix = CountingSequence(SyntheticSequence.generate(args.seed, args.exhaustive_frames, size, (6, 9)))
    prefix.sequence.cache.capacity = 10**9  # keep every decoded view, as before
    everything = replace(thresholds, max_candidates=10**9, frustum_slack=1.0)  # measure every later frame
    exhaustive = run(prefix, [0, args.exhaustive_frames // 4, args.exhaustive_frames // 2], everything)
    # Exhaustive cost per anchor grows with the frames after it; scale the prefix's to the whole sequence.
    scale = (args.frames - np.mean(starts)) / (
        args.exhaustive_frames - np.mean([0, 0.25, 0.5]) * args.exhaustive_frames
    )

    print(f"synthetic sequence: {args.frames} frames at {size[0]}x{size[1]}, {args.anchors} selections (2/4/8 views)")
    print(
        f"streaming:  {streaming['seconds_per_selection']:.2f} s per selection (max "
        f"{streaming['seconds_per_selection_max']:.2f}), peak memory {streaming['peak_memory_mib']:.0f} MiB, "
        f"{streaming['renders']} frames rendered, at most {streaming['candidates_max']} candidates measured per anchor "
        f"(limit {thresholds.max_candidates}), {streaming['cached_views']} views cached (limit {MAX_CACHED_VIEWS}); "
        f"built {streaming['built']}, skipped {streaming['skipped'] or 'none'}"
    )
    print(
        f"exhaustive on a {args.exhaustive_frames}-frame prefix: {exhaustive['seconds_per_selection']:.2f} s per "
        f"selection, peak memory {exhaustive['peak_memory_mib']:.0f} MiB, {exhaustive['cached_views']} views cached; "
        f"scaled to {args.frames} frames about {exhaustive['seconds_per_selection'] * scale:.0f} s per selection and "
        f"{exhaustive['peak_memory_mib'] * args.frames / args.exhaustive_frames:.0f} MiB"
    )
    print(
        json.dumps(
            {
                "frames": args.frames,
                "image_size": list(size),
                "selections": args.anchors,
                "seconds_per_selection": streaming["seconds_per_selection"],
                "peak_memory_mib": streaming["peak_memory_mib"],
                "candidates_per_anchor_max": streaming["candidates_max"],
                "cached_views_max": streaming["cached_views"],
                "frames_rendered": streaming["renders"],
                "exhaustive_prefix_frames": args.exhaustive_frames,
                "exhaustive_seconds_per_selection": exhaustive["seconds_per_selection"],
                "exhaustive_peak_memory_mib": exhaustive["peak_memory_mib"],
            }
        )
    )


if __name__ == "__main__":
    main()
