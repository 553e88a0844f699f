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

Other sources: `--source rgbd --input-dir DIR [--rgbd-layout redwood|single_frames|annotated|sunrgbd|scannet]` (the
last three read the dataset's own masks, names, intrinsics and up vector; no segmenter runs), `--source image_folder
--input-dir DIR`, `--source hub --dataset-name org/images`; `--push-to-hub org/name [--private]` uploads the build
directory.
Machines split a build with `--num-shards N --shard-index i`; rerunning the same command resumes.
"""

from __future__ import annotations

import io
from dataclasses import asdict

import numpy as np
from datasets import Features, List, Value, load_dataset
from PIL import Image, ImageDraw, ImageFont

from . import publishing
from .arguments import MultiturnArguments
from .building import ChunkedBuilder, run_build
from .frames import Frame, SkipSample
from .perception import Perception
from .questions import Conversation, write_conversation
from .sources import (
    AnnotatedRGBDSource,
    HubImageSource,
    ImageFolderSource,
    RGBDSource,
    ScanNetFrameSource,
    SunRGBDSource,
    SyntheticSource,
)
from .spatial import Thresholds, Tolerances, analyse


THRESHOLD_NAMES = list(Thresholds().to_dict())
TOLERANCE_NAMES = [name for name in Tolerances.__dataclass_fields__ if name != "depth_origin"]
# RGB-D layouts that carry masks and category names of their own: no segmenter runs on them.
LAYOUTS_WITH_MASKS = ("annotated", "sunrgbd", "scannet")

# Structured truth of one turn (single-view; the multi-view multi-turn dataset adds `views`).
TURN_FEATURES = {
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

FEATURES = Features(
    {
        "images": publishing.IMAGES_FEATURE,
        "messages": publishing.MESSAGES_FEATURE,
        "turns": List(TURN_FEATURES),
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
            "gravity_source": Value("string"),
            "gravity_confidence": Value("float64"),
            "gravity_spread_deg": Value("float64"),
            "gravity_inconsistency_deg": Value("float64"),
            "gravity_reason": Value("string"),
            "instances_origin": Value("string"),
            "sparse_depth": Value("bool"),
            "tolerances": {"depth_origin": Value("string"), **{name: Value("float64") for name in TOLERANCE_NAMES}},
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
        "from, intrinsics (pixels), image size; the answer frame: `gravity_aligned`, its tilt from the camera's up, "
        "`gravity_source` (`given:<origin>` for the dataset's own up vector, `estimated` for a trusted estimate, "
        "`camera_axes` otherwise), the estimate's `gravity_confidence` (share of resampled estimates within 2 "
        "degrees), `gravity_spread_deg`, `gravity_inconsistency_deg` (against the walls) and `gravity_reason` "
        "when not trusted; where the masks came from (`instances_origin`: synthetic, given, or a segmenter), "
        "whether depth is sparse, the `tolerances` of its depth origin, turn order, turns left out, perception "
        "backends (role, model id, revision) and every geometric threshold."
    ),
}


def make_source(args: MultiturnArguments, thresholds: Thresholds):
    """The source named by `args.source`."""
    if args.source == "synthetic":
        return SyntheticSource(
            args.seed, args.num_samples, (args.image_width, args.image_height), (args.min_objects, args.max_objects)
        )
    if args.source == "rgbd":
        use_up = not args.estimate_gravity
        if args.rgbd_layout == "annotated":
            return AnnotatedRGBDSource(args.input_dir, thresholds, use_up_vector=use_up)
        if args.rgbd_layout == "sunrgbd":
            return SunRGBDSource(args.input_dir, thresholds, args.sunrgbd_depth, use_up_vector=use_up)
        if args.rgbd_layout == "scannet":
            return ScanNetFrameSource(
                args.input_dir, thresholds, args.scannet_label_map, args.frame_step, use_up_vector=use_up
            )
        if args.rgbd_layout == "redwood":
            return RGBDSource.from_redwood(args.input_dir, thresholds)
        return RGBDSource.from_single_frames(args.input_dir, thresholds)
    if args.source == "image_folder":
        return ImageFolderSource(args.input_dir, thresholds)
    dataset = load_dataset(args.dataset_name, split=args.dataset_split, revision=args.dataset_revision)
    return HubImageSource(dataset, args.image_column, thresholds, name=args.dataset_name)


def make_perception(args: MultiturnArguments) -> Perception:
    """Backends the source needs: none for synthetic scenes, none but a captioner for RGB-D layouts with their own
    masks, masks for other RGB-D, depth and masks for plain images.

    Raises:
        BackendUnavailableError: When a backend's weights cannot be loaded (the message names the model and says
            how to pass masks instead).
    """
    if args.source == "synthetic":
        return Perception()
    needs_masks = not (args.source == "rgbd" and args.rgbd_layout in LAYOUTS_WITH_MASKS)
    return Perception.from_arguments(args, needs_depth=args.source in ("image_folder", "hub"), needs_masks=needs_masks)


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
            "gravity_source": scene.gravity.source,
            "gravity_confidence": scene.gravity.confidence,
            "gravity_spread_deg": scene.gravity.spread_deg,
            "gravity_inconsistency_deg": scene.gravity.inconsistency_deg,
            "gravity_reason": scene.gravity.reason,
            "instances_origin": frame.instances_origin,
            "sparse_depth": scene.sparse,
            "tolerances": scene.tolerances.to_dict(),
            "order": order,
            "dropped_turns": conversation.dropped,
            "backends": frame.backends,
            "thresholds": thresholds.to_dict(),
        },
    }


class MultiturnBuilder(ChunkedBuilder):
    """Makes the rows of consecutive samples: source, perception in batches, then `build_example`.

    Args:
        args (`MultiturnArguments`): Build arguments.
        thresholds (`Thresholds`): Geometric thresholds.
    """

    features = FEATURES
    counters = ("dropped_turns",)

    def __init__(self, args: MultiturnArguments, thresholds: Thresholds):
        self.source = make_source(args, thresholds)
        self.perception = make_perception(args)
        total = len(self.source) if args.num_samples is None else min(args.num_samples, len(self.source))
        super().__init__(args, thresholds, total)

    def examples(self, indices):
        # Batched: the perception models run on `batch_size` frames at a time.
        indices = list(indices)
        for batch_start in range(0, len(indices), self.args.batch_size):
            loaded = []
            for index in indices[batch_start : batch_start + self.args.batch_size]:
                try:
                    loaded.append((index, self.source.load(index)))
                except SkipSample as skip:
                    yield skip
            try:
                completed = list(zip(loaded, self.perception.complete([frame for _, frame in loaded]), strict=True))
            except SkipSample:
                # One frame's perception output is unusable (e.g. a depth estimate without a valid pixel): complete
                # the batch frame by frame, so that only that frame becomes a counted skip.
                completed = []
                for item in loaded:
                    try:
                        completed.append((item, self.perception.complete([item[1]])[0]))
                    except SkipSample as skip:
                        yield skip
            for (index, _), frame in completed:
                try:
                    yield build_example(
                        frame, index, self.args.seed, self.args.order, self.thresholds, self.args.jpeg_quality
                    )
                except SkipSample as skip:
                    yield skip

    def count(self, row: dict) -> dict:
        return {"dropped_turns": row["provenance"]["dropped_turns"]}

    def manifest_extras(self) -> dict:
        return {"backends": self.perception.backends}


def build(args: MultiturnArguments, thresholds: Thresholds | None = None) -> dict:
    """Build this machine's share of the chunks (resuming past completed ones), then manifest, card and upload.

    Args:
        args (`MultiturnArguments`): Build arguments.
        thresholds (`Thresholds`, *optional*): Geometric thresholds (defaults when `None`).

    Returns:
        `dict`: The manifest of this shard.

    Raises:
        YieldTooLowError: When built / attempted falls below `args.min_yield`.
    """
    return run_build(MultiturnBuilder, args, thresholds or Thresholds(), make_card, "multi-turn spatial reasoning")


def make_card(args: MultiturnArguments, thresholds: Thresholds, manifest: dict):
    """The dataset card: every column, the settings, backends with licences, counts and how to load."""
    license = args.data_license(synthetic=args.source == "synthetic")
    backends = manifest["backends"]
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
the camera with x right, y forward (horizontal), z up; up is the dataset's own up vector where it has one, else
estimated from the horizontal surfaces with a measured confidence, and camera axes when that is not trustworthy
(`gravity_aligned=False`: no vertical or cube questions); distances under 0.5 m are written in centimetres.
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

{publishing.CITATION}
"""
    return publishing.make_card(
        pretty_name=f"SpatialBoost multi-turn spatial reasoning ({args.source})",
        license=license,
        tags=["spatial-reasoning", "depth", "3d", "multi-turn", "spatialboost", args.source],
        body=body,
        num_rows=manifest["built"],
    )


def main(argv: list[str] | None = None) -> None:
    """Console entry point `spatialboost-build-multiturn` (parser and one-line errors: `spatialboost/cli.py`)."""
    from spatialboost.cli import build_multiturn

    build_multiturn(argv)


if __name__ == "__main__":
    main()
