"""Build and publish the single-view multi-turn spatial reasoning dataset (SpatialBoost stage 3).

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057): 12-turn conversations from pixel-level depth, to
object-level relations between 3D cubes, to a scene-level distance, then captions.

```
source.load(i) -> Frame --perception (non-synthetic)--> Frame --analyse--> SpatialScene --write--> Conversation
                                                                                     |
                       row = {images: [image with marks], messages, turns, provenance}  <-- draw marks
```

Usage (offline, exact ground truth):

    spatialboost-build-multiturn --source synthetic --num-samples 1000 --seed 0 --output-dir multiturn --num-proc 2

Other sources: `--source rgbd --input-dir DIR [--rgbd-layout single_frames]`, `--source image_folder --input-dir DIR`,
`--source hub --dataset-name org/images`; `--push-to-hub org/name [--private]` uploads the build directory.
Machines split a build with `--num-shards N --shard-index i`; rerunning the same command resumes.
"""

from __future__ import annotations

import io
import math
import multiprocessing
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Literal

import numpy as np
from datasets import Features, List, Value, load_dataset
from datasets import Image as ImageFeature
from PIL import Image, ImageDraw, ImageFont
from tqdm.auto import tqdm
from transformers import HfArgumentParser

from . import publishing
from .frames import Frame, SkipSample
from .perception import Perception
from .questions import ORDERS, Conversation, write_conversation
from .sources import HubImageSource, ImageFolderSource, RGBDSource, SyntheticSource
from .spatial import Thresholds, analyse


THRESHOLD_NAMES = list(Thresholds().to_dict())

FEATURES = Features(
    {
        "images": List(ImageFeature()),
        "messages": List(
            {"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}
        ),
        "turns": List(
            {
                "level": Value("string"),
                "kind": Value("string"),
                "answer": Value("string"),
                "value": Value("float64"),
                "unit": Value("string"),
                "tolerance": Value("float64"),
                "vector": List(Value("float64")),
                "points": List(List(Value("int32"))),
                "objects": List(Value("string")),
                "object_ids": List(Value("int32")),
            }
        ),
        "provenance": {
            "source": Value("string"),
            "sample_id": Value("string"),
            "index": Value("int64"),
            "seed": Value("int64"),
            "metric_depth": Value("bool"),
            "depth_origin": Value("string"),
            "intrinsics": {
                "fx": Value("float64"),
                "fy": Value("float64"),
                "cx": Value("float64"),
                "cy": Value("float64"),
            },
            "intrinsics_origin": Value("string"),
            "image_width": Value("int32"),
            "image_height": Value("int32"),
            "gravity_aligned": Value("bool"),
            "gravity_tilt_deg": Value("float64"),
            "order": Value("string"),
            "dropped_turns": List(Value("string")),
            "backends": List({"role": Value("string"), "model_id": Value("string"), "revision": Value("string")}),
            "thresholds": {name: Value("float64") for name in THRESHOLD_NAMES},
        },
    }
)

COLUMN_DOCS = {
    "images": "List with one image: the input with the marked points (numbers) and lettered objects drawn on it.",
    "messages": (
        "TRL conversational format: alternating `user` / `assistant` turns; the first user turn starts with "
        '`{"type": "image"}`; every other content part is `{"type": "text", "text": ...}`.'
    ),
    "turns": (
        "Structured truth of each user/assistant pair, in the same order: `level` (pixel, object, scene, caption), "
        "`kind`, short `answer`, `value` in metres (depth; depth difference; signed centre offset along the "
        "relation's axis; centre distance), `unit` shown in the text, absolute `tolerance` in metres (for relations: "
        "the near-tie margin the offset exceeds), cube `vector` (x, y, z, width, length, height in metres, yaw in "
        "degrees), marked `points` (u, v), `objects` as named and their `object_ids` (positions in the source's "
        "instance list)."
    ),
    "provenance": (
        "Source and sample id, build seed and index, whether depth is metric and where depth and intrinsics came "
        "from, intrinsics (pixels), image size, gravity alignment, turn order, turns left out, perception backends "
        "(role, model id, revision) and every geometric threshold."
    ),
}


def _arg(default, help: str):
    """A dataclass field with its `--help` text (HfArgumentParser adds the `--dashed-name` spelling itself)."""
    if isinstance(default, list | tuple):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class MultiturnArguments:
    """Arguments of `spatialboost-build-multiturn` (every one is also a `--dashed-name` flag).

    Args:
        source (`str`): `synthetic` (default, exact ground truth), `rgbd`, `image_folder` or `hub`.
        output_dir (`str`): Build directory (also the layout uploaded to the Hub).
        num_samples (`int`, *optional*): Source items to process (synthetic: scenes; others: the first N, all when
            unset).
        seed (`int`): Build seed; sample `i` uses `(seed, i)` whatever the sharding.
        order (`str`): Turn order: `forward`, `reverse` or `shuffled` (ablations).
        input_dir (`str`, *optional*): Folder of the `rgbd` and `image_folder` sources.
        rgbd_layout (`str`): `redwood` (color/, depth/ in mm, camera_primesense.json) or `single_frames`
            (`{TUM,SUN,NYU}_{color,depth}.*`).
        dataset_name (`str`, *optional*): Hub dataset of the `hub` source.
        dataset_split (`str`): Its split.
        dataset_revision (`str`, *optional*): Its revision (pin a commit for reproducible builds).
        image_column (`str`): Its image column.
        image_width (`int`): Synthetic image width.
        image_height (`int`): Synthetic image height.
        min_objects (`int`): Fewest objects per synthetic scene.
        max_objects (`int`): Most objects per synthetic scene.
        depth_backend (`str`): `depth_pro` or `depth_anything` (sources without depth).
        depth_model (`str`): Model id of the depth backend.
        depth_revision (`str`, *optional*): Its revision.
        segmenter (`str`): `sam3`, `grounding_dino_sam2`, or `depth_clusters` (no model: depth segments named
            "object"; for RGB-D without a segmentation model).
        segmenter_model (`str`): SAM3 model id, or the SAM2 one with `grounding_dino_sam2` (e.g.
            `facebook/sam2.1-hiera-tiny`).
        segmenter_revision (`str`, *optional*): Its revision.
        detector_model (`str`): Grounding DINO model id (with `grounding_dino_sam2`).
        detector_revision (`str`, *optional*): Its revision.
        categories (`list[str]`): Text prompts of the segmenter.
        captioner_model (`str`, *optional*): Florence-2 model id; captions are written from the objects when unset.
        captioner_revision (`str`, *optional*): Its revision.
        caption_max_new_tokens (`int`): Caption length limit in tokens.
        device (`str`): Torch device of the perception models.
        batch_size (`int`): Images per perception batch.
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

    source: Literal["synthetic", "rgbd", "image_folder", "hub"] = _arg("synthetic", "Input source.")
    output_dir: str = _arg("spatialboost-multiturn", "Build directory.")
    num_samples: int | None = _arg(None, "Source items to process.")
    seed: int = _arg(0, "Build seed.")
    order: Literal["forward", "reverse", "shuffled"] = _arg("forward", "Turn order.")
    input_dir: str | None = _arg(None, "Folder of the rgbd / image_folder source.")
    rgbd_layout: Literal["redwood", "single_frames"] = _arg("redwood", "RGB-D folder layout.")
    dataset_name: str | None = _arg(None, "Hub dataset of the hub source.")
    dataset_split: str = _arg("train", "Split of the hub source.")
    dataset_revision: str | None = _arg(None, "Revision of the hub source.")
    image_column: str = _arg("image", "Image column of the hub source.")
    image_width: int = _arg(640, "Synthetic image width.")
    image_height: int = _arg(480, "Synthetic image height.")
    min_objects: int = _arg(8, "Fewest objects per synthetic scene.")
    max_objects: int = _arg(12, "Most objects per synthetic scene.")
    depth_backend: Literal["depth_pro", "depth_anything"] = _arg("depth_pro", "Depth model family.")
    depth_model: str = _arg("apple/DepthPro-hf", "Depth model id.")
    depth_revision: str | None = _arg(None, "Depth model revision.")
    segmenter: Literal["sam3", "grounding_dino_sam2", "depth_clusters"] = _arg("sam3", "Instance segmenter.")
    segmenter_model: str = _arg("facebook/sam3", "SAM3 model id, or the SAM2 one with grounding_dino_sam2.")
    segmenter_revision: str | None = _arg(None, "Segmenter revision.")
    detector_model: str = _arg("IDEA-Research/grounding-dino-tiny", "Grounding DINO id (grounding_dino_sam2).")
    detector_revision: str | None = _arg(None, "Detector revision.")
    categories: list[str] = _arg(
        ["chair", "table", "sofa", "bed", "cabinet", "desk", "lamp", "monitor", "plant", "bottle", "cup", "book"],
        "Segmenter text prompts.",
    )
    captioner_model: str | None = _arg(None, "Florence-2 model id.")
    captioner_revision: str | None = _arg(None, "Captioner revision.")
    caption_max_new_tokens: int = _arg(96, "Caption length limit in tokens.")
    device: str = _arg("cpu", "Torch device of the perception models.")
    batch_size: int = _arg(8, "Images per perception batch.")
    num_shards: int = _arg(1, "Machines sharing the build.")
    shard_index: int = _arg(0, "This machine's share.")
    num_proc: int = _arg(1, "Local worker processes.")
    samples_per_chunk: int = _arg(100, "Samples per parquet file.")
    min_yield: float = _arg(0.5, "Built / attempted below which the build fails.")
    push_to_hub: str | None = _arg(None, "Dataset repository to upload to.")
    private: bool = _arg(False, "Create the Hub repository private.")
    license: str | None = _arg(None, "Licence of the data.")
    jpeg_quality: int = _arg(95, "JPEG quality of stored images.")

    def __post_init__(self):
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")
        if not 0 <= self.shard_index < self.num_shards:
            raise ValueError(f"shard_index must be in [0, {self.num_shards}), got {self.shard_index}")
        if self.source in ("rgbd", "image_folder") and self.input_dir is None:
            raise ValueError(f"--input-dir is required for source {self.source!r}")
        if self.source == "hub" and self.dataset_name is None:
            raise ValueError("--dataset-name is required for source 'hub'")
        if self.source == "synthetic" and self.num_samples is None:
            raise ValueError("--num-samples is required for source 'synthetic'")
        if not 0.0 <= self.min_yield <= 1.0:
            raise ValueError(f"min_yield must be in [0, 1], got {self.min_yield}")
        if self.num_proc < 1 or self.samples_per_chunk < 1:
            raise ValueError("num_proc and samples_per_chunk must be at least 1")


# Arguments that change how a build runs, not which rows it makes: a build may resume with other values.
RUN_ONLY_ARGUMENTS = (
    "num_proc",
    "num_shards",
    "shard_index",
    "device",
    "batch_size",
    "min_yield",
    "push_to_hub",
    "private",
    "license",
)


class YieldTooLowError(RuntimeError):
    """Raised when built / attempted drops below `min_yield`: the inputs or backends are not what was expected."""


def make_source(args: MultiturnArguments, thresholds: Thresholds):
    """The source named by `args.source`."""
    if args.source == "synthetic":
        return SyntheticSource(
            args.seed, args.num_samples, (args.image_width, args.image_height), (args.min_objects, args.max_objects)
        )
    if args.source == "rgbd":
        if args.rgbd_layout == "redwood":
            return RGBDSource.from_redwood(args.input_dir, thresholds)
        return RGBDSource.from_single_frames(args.input_dir, thresholds)
    if args.source == "image_folder":
        return ImageFolderSource(args.input_dir, thresholds)
    dataset = load_dataset(args.dataset_name, split=args.dataset_split, revision=args.dataset_revision)
    return HubImageSource(dataset, args.image_column, thresholds, name=args.dataset_name)


def make_perception(args: MultiturnArguments) -> Perception:
    """Backends the source needs: none for synthetic scenes, masks for RGB-D, depth and masks for plain images."""
    if args.source == "synthetic":
        return Perception()
    return Perception.from_arguments(args, needs_depth=args.source in ("image_folder", "hub"))


def marker_radius(image: Image.Image) -> int:
    return max(4, round(max(image.size) / 100))


def draw_marks(image: Image.Image, conversation: Conversation, radius: int) -> Image.Image:
    """Copy of `image` with numbered points (a red dot on the exact pixel) and lettered object labels."""
    marked = image.copy()
    draw = ImageDraw.Draw(marked)
    font = ImageFont.load_default(size=int(2.5 * radius))
    for label, u, v in conversation.point_marks:
        draw.ellipse(
            [u - radius, v - radius, u + radius, v + radius],
            fill=(255, 0, 0),
            outline=(255, 255, 255),
            width=max(1, radius // 3),
        )
        draw.text(
            (u + radius + 2, v - radius),
            label,
            fill=(255, 255, 255),
            font=font,
            stroke_width=max(1, radius // 3),
            stroke_fill=(0, 0, 0),
        )
    for letter, u, v in conversation.object_marks:
        box = draw.textbbox((u, v), letter, font=font, anchor="mm")
        draw.rectangle([box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2], fill=(255, 255, 255), outline=(0, 0, 0))
        draw.text((u, v), letter, fill=(0, 0, 0), font=font, anchor="mm")
    return marked


def build_example(
    frame: Frame, index: int, seed: int, order: str, thresholds: Thresholds, jpeg_quality: int = 95
) -> dict:
    """One dataset row from a frame that has depth, intrinsics and instances.

    Args:
        frame (`Frame`): Input after perception.
        index (`int`): Sample index in the source (with `seed`, fixes every random choice).
        seed (`int`): Build seed.
        order (`str`): Turn order.
        thresholds (`Thresholds`): Geometric thresholds.
        jpeg_quality (`int`): Quality of the stored image.

    Raises:
        SkipSample: When no correct sample can be written (reasons in `SkipReason`).
    """
    rng = np.random.default_rng([seed, index])
    scene = analyse(frame, thresholds, rng)
    radius = marker_radius(frame.image)
    conversation = write_conversation(scene, thresholds, rng, order, frame.captions, marker_radius=radius)
    buffer = io.BytesIO()
    draw_marks(frame.image, conversation, radius).save(buffer, format="JPEG", quality=jpeg_quality)

    messages = []
    for position, turn in enumerate(conversation.turns):
        question = f"{conversation.preamble} {turn.question}" if position == 0 else turn.question
        content = [{"type": "image", "text": None}] if position == 0 else []
        messages.append({"role": "user", "content": [*content, {"type": "text", "text": question}]})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": turn.answer_text}]})
    turns = [
        {key: value for key, value in asdict(turn).items() if key not in ("question", "answer_text")}
        for turn in conversation.turns
    ]
    k = frame.intrinsics
    return {
        "images": [{"bytes": buffer.getvalue(), "path": None}],
        "messages": messages,
        "turns": turns,
        "provenance": {
            "source": frame.source,
            "sample_id": frame.sample_id,
            "index": index,
            "seed": seed,
            "metric_depth": frame.metric_depth,
            "depth_origin": frame.depth_origin,
            "intrinsics": {"fx": k.fx, "fy": k.fy, "cx": k.cx, "cy": k.cy},
            "intrinsics_origin": frame.intrinsics_origin,
            "image_width": frame.image.width,
            "image_height": frame.image.height,
            "gravity_aligned": scene.frame.aligned,
            "gravity_tilt_deg": scene.frame.tilt_deg,
            "order": order,
            "dropped_turns": conversation.dropped,
            "backends": frame.backends,
            "thresholds": thresholds.to_dict(),
        },
    }


class MultiturnBuilder:
    """Builds chunks of consecutive samples; one instance per worker process.

    Args:
        args (`MultiturnArguments`): Build arguments.
        thresholds (`Thresholds`): Geometric thresholds.
    """

    def __init__(self, args: MultiturnArguments, thresholds: Thresholds):
        self.args, self.thresholds = args, thresholds
        self.output_dir = Path(args.output_dir)
        self.source = make_source(args, thresholds)
        self.perception = make_perception(args)
        total = len(self.source) if args.num_samples is None else min(args.num_samples, len(self.source))
        self.num_samples = total
        self.num_chunks = max(1, math.ceil(total / args.samples_per_chunk))

    def chunk_range(self, chunk: int) -> range:
        start = chunk * self.args.samples_per_chunk
        return range(start, min(start + self.args.samples_per_chunk, self.num_samples))

    def build_chunk(self, chunk: int) -> dict:
        """Build, write and mark one chunk; returns the counts stored in its marker."""
        rows, skipped, dropped = [], Counter(), Counter()
        indices = list(self.chunk_range(chunk))
        for batch_start in range(0, len(indices), self.args.batch_size):
            frames = []
            for index in indices[batch_start : batch_start + self.args.batch_size]:
                try:
                    frames.append((index, self.source.load(index)))
                except SkipSample as skip:
                    skipped[skip.reason.value] += 1
            for index, frame in zip(
                [i for i, _ in frames], self.perception.complete([f for _, f in frames]), strict=True
            ):
                try:
                    row = build_example(
                        frame, index, self.args.seed, self.args.order, self.thresholds, self.args.jpeg_quality
                    )
                except SkipSample as skip:
                    skipped[skip.reason.value] += 1
                    continue
                dropped.update(row["provenance"]["dropped_turns"])
                rows.append(row)
        stats = {
            "attempted": len(indices),
            "built": len(rows),
            "skipped": dict(skipped),
            "dropped_turns": dict(dropped),
        }
        publishing.write_chunk(self.output_dir, chunk, self.num_chunks, rows, FEATURES, stats)
        return stats


_WORKER: MultiturnBuilder | None = None


def _init_worker(args: MultiturnArguments, thresholds: Thresholds) -> None:
    global _WORKER
    _WORKER = MultiturnBuilder(args, thresholds)


def _build_chunk_in_worker(chunk: int) -> tuple[int, dict]:
    return chunk, _WORKER.build_chunk(chunk)


def _check_yield(totals: Counter, min_yield: float, min_attempts: int) -> None:
    if totals["attempted"] >= min_attempts and totals["built"] < min_yield * totals["attempted"]:
        raise YieldTooLowError(
            f"built {totals['built']} of {totals['attempted']} samples, below min_yield={min_yield}; "
            f"skips: {dict(totals['skipped'])}. Completed chunks are kept; fix the input and rerun to resume."
        )


def build(args: MultiturnArguments, thresholds: Thresholds | None = None) -> dict:
    """Build this machine's share of the chunks (resuming past completed ones), then manifest, card and upload.

    Args:
        args (`MultiturnArguments`): Build arguments.
        thresholds (`Thresholds`, *optional*): Geometric thresholds (defaults when `None`).

    Returns:
        `dict`: The manifest of this shard.

    Raises:
        YieldTooLowError: When built / attempted falls below `args.min_yield` (checked as chunks complete, once at
            least two chunks' worth of samples were attempted, and at the end).
    """
    thresholds = thresholds or Thresholds()
    builder = MultiturnBuilder(args, thresholds)
    output_dir = builder.output_dir
    signature = {k: v for k, v in asdict(args).items() if k not in RUN_ONLY_ARGUMENTS}
    publishing.claim_output_dir(output_dir, {**signature, "thresholds": thresholds.to_dict()})
    mine = [c for c in range(builder.num_chunks) if c % args.num_shards == args.shard_index]
    done = {c: publishing.read_marker(output_dir, c) for c in mine}
    todo = [c for c in mine if done[c] is None]

    totals = Counter(attempted=0, built=0)
    totals["skipped"], totals["dropped_turns"] = Counter(), Counter()

    def account(stats: dict) -> None:
        totals["attempted"] += stats["attempted"]
        totals["built"] += stats["built"]
        totals["skipped"].update(stats["skipped"])
        totals["dropped_turns"].update(stats["dropped_turns"])

    for stats in done.values():
        if stats is not None:
            account(stats)
    min_attempts = 2 * args.samples_per_chunk
    progress = tqdm(total=len(mine), initial=len(mine) - len(todo), desc="chunks", unit="chunk")
    if args.num_proc == 1 or len(todo) <= 1:
        results = ((chunk, builder.build_chunk(chunk)) for chunk in todo)
        pool = None
    else:
        pool = multiprocessing.get_context("spawn").Pool(
            min(args.num_proc, len(todo)), initializer=_init_worker, initargs=(args, thresholds)
        )
        results = pool.imap_unordered(_build_chunk_in_worker, todo)
    try:
        for chunk, stats in results:
            done[chunk] = stats
            account(stats)
            progress.update(1)
            progress.set_postfix(built=totals["built"], skipped=totals["attempted"] - totals["built"])
            _check_yield(totals, args.min_yield, min_attempts)
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
            "skipped": dict(sorted(totals["skipped"].items())),
            "dropped_turns": dict(sorted(totals["dropped_turns"].items())),
            "arguments": asdict(args),
            "thresholds": thresholds.to_dict(),
            "backends": builder.perception.backends,
            "versions": {name: version(name) for name in ("datasets", "transformers", "huggingface_hub", "numpy")},
        }
        publishing.write_manifest(output_dir, args.shard_index, args.num_shards, manifest)
    publishing.write_card(output_dir, make_card(args, thresholds, builder.perception.backends, manifest))
    _check_yield(totals, args.min_yield, 1)
    if args.push_to_hub:
        publishing.push_to_hub(output_dir, args.push_to_hub, private=args.private)
    return manifest


def make_card(args: MultiturnArguments, thresholds: Thresholds, backends: list[dict], manifest: dict):
    """The dataset card: every column, the settings, backends with licences, counts and how to load."""
    license = args.license or ("cc-by-4.0" if args.source == "synthetic" else "other")
    columns = "\n".join(f"| `{name}` | {doc} |" for name, doc in COLUMN_DOCS.items())
    settings = "\n".join(
        f"| `{key}` | `{value}` |" for key, value in asdict(args).items() if key not in ("push_to_hub",)
    )
    threshold_rows = "\n".join(f"| `{key}` | `{value}` |" for key, value in thresholds.to_dict().items())
    if backends:
        backend_rows = "\n".join(
            f"| {b['role']} | `{b['model_id']}` | `{b['revision']}` | {b['licence']} |" for b in backends
        )
    else:
        backend_rows = "| (none) | ground truth from the source | | |"
    skips = ", ".join(f"{k}: {v}" for k, v in manifest["skipped"].items()) or "none"
    body = f"""# SpatialBoost multi-turn spatial reasoning ({args.source}, single view)

Training data for stage 3 of [SpatialBoost](https://arxiv.org/abs/2603.22057): 12-turn conversations that go from
pixel-level depth (5 turns) to object-level relations between 3D bounding cubes (4) to a scene-level distance (1)
and captions (2). Built with `dataset_builders/multiturn.py` of the SpatialBoost package:

```
spatialboost-build-multiturn --source {args.source} --num-samples {args.num_samples} --seed {args.seed} --output-dir DIR
```

```python
from datasets import load_dataset
ds = load_dataset("{args.push_to_hub or "DIR"}", split="train")
```

## Columns

| column | content |
|---|---|
{columns}

Conventions: pixel coordinates `(u, v)` refer to the stored image (column, row from the top-left); depth is the
distance along the optical axis, in metres with 3 decimals; 3D values are in a gravity-aligned frame centred on
the camera with x right, y forward (horizontal), z up (camera axes when no floor was found:
`gravity_aligned=False`, and vertical questions are left out); distances under 0.5 m are written in centimetres.
Objects are named by category when it is unique in the image, otherwise by a letter drawn on them. Near-ties are
never asked; yes/no and left/right answers are balanced.

## Counts (this build directory)

Attempted {manifest["attempted"]}, built {manifest["built"]} (yield {manifest["yield"]:.1%}). Skipped: {skips}.
Per-shard manifests with every count are in `manifests/`.

## Perception backends

| role | model id | revision | licence (see its model card) |
|---|---|---|---|
{backend_rows}

## Settings

| argument | value |
|---|---|
{settings}

| threshold | value |
|---|---|
{threshold_rows}

## Licence

Data: `{license}`. Synthetic images are rendered by the package. For other sources the licence of the input images
and of the perception models' outputs applies.

## Citation

```bibtex
@article{{jeon2026spatialboost,
  title={{SpatialBoost: Enhancing Visual Representation through Language-Guided Reasoning}},
  author={{Jeon and Kim and Jang and Kim and Shin}},
  journal={{arXiv preprint arXiv:2603.22057}},
  year={{2026}}
}}
```
"""
    return publishing.make_card(
        pretty_name=f"SpatialBoost multi-turn spatial reasoning ({args.source})",
        license=license,
        tags=["spatial-reasoning", "depth", "3d", "multi-turn", "spatialboost", args.source],
        body=body,
        num_rows=manifest["built"],
    )


def main(argv: list[str] | None = None) -> None:
    """Console entry point `spatialboost-build-multiturn`."""
    (args,) = HfArgumentParser(MultiturnArguments).parse_args_into_dataclasses(args=argv)
    try:
        manifest = build(args)
    except YieldTooLowError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from error
    print(
        f"built {manifest['built']} of {manifest['attempted']} samples into {args.output_dir}; "
        f"skipped: {manifest['skipped'] or 'none'}"
    )


if __name__ == "__main__":
    main()
