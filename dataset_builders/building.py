"""The build loop every SpatialBoost dataset builder shares: arguments, chunks, workers, resume, manifest, CLI.

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057). A builder module (`multiturn.py`,
`multiview_vqa.py`, `multiview_multiturn.py`) writes only what its dataset is: its arguments (a subclass of
[`BuildArguments`]), its rows (a subclass of [`ChunkedBuilder`] that yields them) and its card. This module runs it:

```
samples 0..N-1 -> chunks of `samples_per_chunk` -> this machine's chunks (chunk % num_shards == shard_index)
   -> minus the chunks with a completion marker (resume) -> `num_proc` spawned workers, one builder each
   -> per chunk: parquet file, then marker with its counts -> manifest of the shard, dataset card, Hub upload
```

Sample `i` depends on `(seed, i)` only, so sharding, worker count and resuming never change which rows are made.
"""

from __future__ import annotations

import math
import multiprocessing
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

from datasets import Features
from huggingface_hub import DatasetCard
from tqdm.auto import tqdm

from . import publishing
from .arguments import BuildArguments, arg  # noqa: F401  (re-exported: the builders' shared arguments)
from .frames import SkipSample
from .spatial import Thresholds


class YieldTooLowError(RuntimeError):
    """Raised when built / attempted drops below `min_yield`: the inputs or backends are not what was expected."""


class ChunkedBuilder:
    """Builds chunks of consecutive samples; the build makes one instance per worker process.

    Subclasses set `features` and `counters` and write `example` (or `examples`, to batch), and `count`.

    Args:
        args (`BuildArguments`): Build arguments.
        thresholds (`Thresholds`): Geometric thresholds.
        num_samples (`int`): Samples in the whole build (all shards).
    """

    features: Features
    # Per-row counts kept in markers and manifests besides `skipped`, e.g. `("views",)`; filled by `count`.
    counters: tuple[str, ...] = ()

    def __init__(self, args: BuildArguments, thresholds: Thresholds, num_samples: int):
        self.args, self.thresholds = args, thresholds
        self.output_dir = Path(args.output_dir)
        self.num_samples = num_samples
        self.num_chunks = max(1, math.ceil(num_samples / args.samples_per_chunk))

    def chunk_range(self, chunk: int) -> range:
        start = chunk * self.args.samples_per_chunk
        return range(start, min(start + self.args.samples_per_chunk, self.num_samples))

    def example(self, index: int) -> dict:
        """The row of sample `index`; raises `SkipSample` when it cannot be made."""
        raise NotImplementedError

    def examples(self, indices: Iterable[int]) -> Iterator[dict | SkipSample]:
        """Rows of `indices` in order, a `SkipSample` in place of each one that could not be made."""
        for index in indices:
            try:
                yield self.example(index)
            except SkipSample as skip:
                yield skip

    def count(self, row: dict) -> dict[str, Iterable[str]]:
        """Keys to count for a built row, per name in `counters`."""
        return {}

    def manifest_extras(self) -> dict:
        """Builder-specific entries of the manifest (for example the perception backends)."""
        return {}

    def build_chunk(self, chunk: int) -> dict:
        """Build, write and mark one chunk; returns the counts stored in its marker."""
        indices = self.chunk_range(chunk)
        rows, counts = [], {name: Counter() for name in ("skipped", *self.counters)}
        for result in self.examples(indices):
            if isinstance(result, SkipSample):
                counts["skipped"][result.reason.value] += 1
                continue
            for name, keys in self.count(result).items():
                counts[name].update(keys)
            rows.append(result)
        stats = {"attempted": len(indices), "built": len(rows), **{name: dict(c) for name, c in counts.items()}}
        publishing.write_chunk(self.output_dir, chunk, self.num_chunks, rows, self.features, stats)
        return stats


_WORKER: ChunkedBuilder | None = None


def _init_worker(builder_class: type[ChunkedBuilder], args: BuildArguments, thresholds: Thresholds) -> None:
    global _WORKER
    _WORKER = builder_class(args, thresholds)


def _build_chunk_in_worker(chunk: int) -> tuple[int, dict]:
    return chunk, _WORKER.build_chunk(chunk)


def check_yield(totals: dict, min_yield: float, min_attempts: int) -> None:
    """Raises `YieldTooLowError` once `min_attempts` samples were attempted and too few of them were built."""
    if totals["attempted"] >= min_attempts and totals["built"] < min_yield * totals["attempted"]:
        raise YieldTooLowError(
            f"built {totals['built']} of {totals['attempted']} samples, below min_yield={min_yield}; "
            f"skips: {dict(totals['skipped'])}. Completed chunks are kept; fix the input and rerun to resume."
        )


def run_build(
    builder_class: type[ChunkedBuilder],
    args: BuildArguments,
    thresholds: Thresholds,
    make_card: Callable[[BuildArguments, Thresholds, dict], DatasetCard],
    dataset_title: str,
) -> dict:
    """Build this machine's share of the chunks (resuming past completed ones), then manifest, card and upload.

    Args:
        builder_class (`type[ChunkedBuilder]`): Makes the rows; instantiated here and once per worker process.
        args (`BuildArguments`): Build arguments.
        thresholds (`Thresholds`): Geometric thresholds (part of what a resumed build must match).
        make_card (`Callable`): `(args, thresholds, manifest) -> DatasetCard`.
        dataset_title (`str`): Name of the dataset in the upload's commit message.

    Returns:
        `dict`: The manifest of this shard.

    Raises:
        YieldTooLowError: When built / attempted falls below `args.min_yield` (checked as chunks complete, once at
            least two chunks' worth of samples were attempted, and at the end). The manifest is written first.
    """
    builder = builder_class(args, thresholds)
    output_dir = builder.output_dir
    signature = {k: v for k, v in asdict(args).items() if k not in args.run_only_arguments}
    publishing.claim_output_dir(output_dir, {**signature, "thresholds": thresholds.to_dict()})
    mine = [c for c in range(builder.num_chunks) if c % args.num_shards == args.shard_index]
    done = {c: publishing.read_marker(output_dir, c) for c in mine}
    todo = [c for c in mine if done[c] is None]

    counters = ("skipped", *builder.counters)
    totals = {"attempted": 0, "built": 0, **{name: Counter() for name in counters}}

    def account(stats: dict) -> None:
        totals["attempted"] += stats["attempted"]
        totals["built"] += stats["built"]
        for name in counters:
            totals[name].update(stats[name])

    for stats in done.values():
        if stats is not None:
            account(stats)
    progress = tqdm(total=len(mine), initial=len(mine) - len(todo), desc="chunks", unit="chunk")
    pool = None
    if args.num_proc == 1 or len(todo) <= 1:
        results = ((chunk, builder.build_chunk(chunk)) for chunk in todo)
    else:
        pool = multiprocessing.get_context("spawn").Pool(
            min(args.num_proc, len(todo)), initializer=_init_worker, initargs=(builder_class, args, thresholds)
        )
        results = pool.imap_unordered(_build_chunk_in_worker, todo)
    try:
        for chunk, stats in results:
            done[chunk] = stats
            account(stats)
            progress.update(1)
            progress.set_postfix(built=totals["built"], skipped=totals["attempted"] - totals["built"])
            check_yield(totals, args.min_yield, 2 * args.samples_per_chunk)
    finally:
        progress.close()
        if pool is not None:
            pool.terminate()
            pool.join()
        # Written even when the build stops early, so the counts that stopped it can be read.
        manifest = {
            "num_samples": builder.num_samples,
            "num_chunks": builder.num_chunks,
            "num_shards": args.num_shards,
            "shard_index": args.shard_index,
            "chunks": sorted(mine),
            "chunks_done": sorted(c for c, stats in done.items() if stats is not None),
            "attempted": totals["attempted"],
            "built": totals["built"],
            "yield": totals["built"] / max(totals["attempted"], 1),
            **{name: dict(sorted(totals[name].items())) for name in counters},
            "arguments": asdict(args),
            "thresholds": thresholds.to_dict(),
            **builder.manifest_extras(),
            "versions": {name: version(name) for name in ("datasets", "transformers", "huggingface_hub", "numpy")},
        }
        publishing.write_manifest(output_dir, args.shard_index, args.num_shards, manifest)
    publishing.write_card(output_dir, make_card(args, thresholds, manifest))
    check_yield(totals, args.min_yield, 1)
    if args.push_to_hub:
        publishing.push_to_hub(
            output_dir,
            args.push_to_hub,
            private=args.private,
            commit_message=f"Upload SpatialBoost {dataset_title} data",
        )
    return manifest
