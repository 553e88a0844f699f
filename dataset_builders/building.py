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
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path

from datasets import Features
from huggingface_hub import DatasetCard
from tqdm.auto import tqdm
from transformers import HfArgumentParser

from . import publishing
from .frames import BackendUnavailableError, SkipSample
from .spatial import Thresholds


def arg(default, help: str):
    """A dataclass field with its `--help` text (HfArgumentParser adds the `--dashed-name` spelling itself)."""
    if isinstance(default, list | tuple):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class BuildArguments:
    """The arguments every builder takes (each is also a `--dashed-name` flag); builders add their own.

    Args:
        output_dir (`str`): Build directory (also the layout uploaded to the Hub).
        num_samples (`int`, *optional*): Samples to attempt (synthetic: scenes; other sources: the first N, all
            when unset).
        seed (`int`): Build seed; sample `i` uses `(seed, i)` whatever the sharding.
        num_shards (`int`): Machines sharing the build.
        shard_index (`int`): This machine's share.
        num_proc (`int`): Local worker processes.
        samples_per_chunk (`int`): Samples per parquet file and completion marker.
        min_yield (`float`): Built / attempted below which the build fails loudly.
        push_to_hub (`str`, *optional*): Dataset repository to upload to.
        private (`bool`): Create that repository private.
        license (`str`, *optional*): Licence of the data (default: cc-by-4.0 for synthetic, `other` otherwise).
        jpeg_quality (`int`): JPEG quality of the stored images.
    """

    output_dir: str = arg("spatialboost-dataset", "Build directory.")
    num_samples: int | None = arg(None, "Samples to attempt.")
    seed: int = arg(0, "Build seed.")
    num_shards: int = arg(1, "Machines sharing the build.")
    shard_index: int = arg(0, "This machine's share.")
    num_proc: int = arg(1, "Local worker processes.")
    samples_per_chunk: int = arg(100, "Samples per parquet file.")
    min_yield: float = arg(0.5, "Built / attempted below which the build fails.")
    push_to_hub: str | None = arg(None, "Dataset repository to upload to.")
    private: bool = arg(False, "Create the Hub repository private.")
    license: str | None = arg(None, "Licence of the data.")
    jpeg_quality: int = arg(95, "JPEG quality of stored images.")

    # Arguments that change how a build runs, not which rows it makes: a build may resume with other values.
    run_only_arguments = ("num_proc", "num_shards", "shard_index", "min_yield", "push_to_hub", "private", "license")

    def __post_init__(self):
        if not 0 <= self.shard_index < self.num_shards:
            raise ValueError(f"shard_index must be in [0, {self.num_shards}), got {self.shard_index}")
        if not 0.0 <= self.min_yield <= 1.0:
            raise ValueError(f"min_yield must be in [0, 1], got {self.min_yield}")
        if self.num_proc < 1 or self.samples_per_chunk < 1:
            raise ValueError("num_proc and samples_per_chunk must be at least 1")

    def data_license(self, synthetic: bool) -> str:
        """The licence written to the card: `license` if set, else cc-by-4.0 for rendered data, `other` otherwise."""
        return self.license or ("cc-by-4.0" if synthetic else "other")


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


def run_cli(arguments_class: type[BuildArguments], build: Callable[[BuildArguments], dict], argv) -> None:
    """A builder's console entry point: parse `argv`, build, print the counts; exit 2 on a too-low yield."""
    (args,) = HfArgumentParser(arguments_class).parse_args_into_dataclasses(args=argv)
    try:
        manifest = build(args)
    except YieldTooLowError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from error
    except BackendUnavailableError as error:  # names the model and what to do instead; a traceback adds nothing
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from error
    views = f" (views: {manifest['views'] or 'none'})" if "views" in manifest else ""
    print(
        f"built {manifest['built']} of {manifest['attempted']} samples into {args.output_dir}{views}; "
        f"skipped: {manifest['skipped'] or 'none'}"
    )
