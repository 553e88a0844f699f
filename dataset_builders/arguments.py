"""The arguments of the dataset builders: plain dataclasses, one per builder, each field also a `--dashed-name` flag.

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057). They live apart from the builders so that the
console scripts (`spatialboost/cli.py`) parse and check a command line, and answer `--help`, without importing
`datasets`, torch or transformers; `build` in each builder module imports those. Every check here raises a
`ValueError` naming the flag, which the command line prints as one line (exit status 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .questions import ORDERS
from .spatial import Thresholds
from .views import DEFAULT_VIEW_MIX, SelectionThresholds


def arg(default, help: str, source: str | None = None):
    """A dataclass field with its `--help` text; `source` names the `--source` value(s) the flag belongs to (the
    help lists those flags under that source)."""
    metadata = {"help": help} if source is None else {"help": help, "source": source}
    if isinstance(default, list | tuple):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


# The sources that run perception models (depth, masks, captions) where the input lacks them.
PERCEPTION = "rgbd, image_folder, hub: perception"


def check_folder(flag: str, path: str | None) -> None:
    """Raises `ValueError` naming `flag` when `path` is given and is not an existing folder."""
    if path is None:
        return
    folder = Path(path).expanduser()
    if not folder.exists():
        raise ValueError(f"{flag} {path}: no such folder")
    if not folder.is_dir():
        raise ValueError(f"{flag} {path}: a file, not a folder")


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
    num_samples: int | None = arg(
        None, "Samples to attempt (required for synthetic sources; other sources: the first N, default all)."
    )
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


@dataclass
class MultiturnArguments(BuildArguments):
    """Arguments of `spatialboost-build-multiturn`: those of [`BuildArguments`] (output, seed, shards, workers,
    chunks, yield, Hub, licence, JPEG quality) and the ones below (every one is also a `--dashed-name` flag).

    Args:
        source (`str`): `synthetic` (default, exact ground truth), `rgbd`, `image_folder` or `hub`.
        order (`str`): Turn order: `forward`, `reverse` or `shuffled` (ablations).
        input_dir (`str`, *optional*): Folder of the `rgbd` and `image_folder` sources.
        rgbd_layout (`str`): `redwood` (color/, depth/ in mm, camera_primesense.json), `single_frames`
            (`{TUM,SUN,NYU}_{color,depth}.*`), `annotated` (one folder per frame, found recursively: color.jpg,
            depth.png, camera.json with intrinsics and up_camera, instances.png, objects.json), `sunrgbd` (the
            official SUN RGB-D release folders) or `scannet` (a ScanNet scene export with its 2D instance masks).
            The last three carry their own masks, names, intrinsics and up vector (`dataset_builders.sources`).
        estimate_gravity (`bool`): Ignore the dataset's up vector and estimate gravity from the depth.
        sunrgbd_depth (`str`): `depth` (raw readings) or `depth_bfx` (the toolbox's hole-filled depth).
        scannet_label_map (`str`, *optional*): Path of `scannetv2-labels.combined.tsv` (searched next to the scene
            by default).
        frame_step (`int`): Every `frame_step`-th annotated ScanNet frame.
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
        segmenter (`str`): `sam3`, `grounding_dino_sam2`, or `depth_clusters` (no model, asked for explicitly:
            connected depth regions off the floor, walls and other large planes, named `depth_cluster_label`; for
            RGB-D without masks or a segmentation model). Layouts with masks of their own never run one.
        depth_cluster_label (`str`): Name of the depth-cluster segments in the text (`region` by default; they
            are not known to be objects, so `object` only when asked for).
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
    """

    output_dir: str = arg("spatialboost-multiturn", "Build directory.")
    source: Literal["synthetic", "rgbd", "image_folder", "hub"] = arg(
        "synthetic", "Input: synthetic (rendered, exact ground truth), rgbd, image_folder or hub."
    )
    order: Literal["forward", "reverse", "shuffled"] = arg("forward", "Turn order (reverse, shuffled: ablations).")
    input_dir: str | None = arg(None, "Folder of the input frames (required).", source="rgbd, image_folder")
    rgbd_layout: Literal["redwood", "single_frames", "annotated", "sunrgbd", "scannet"] = arg(
        "redwood", "RGB-D folder layout; annotated, sunrgbd and scannet carry their own masks.", source="rgbd"
    )
    estimate_gravity: bool = arg(False, "Ignore the dataset's up vector and estimate gravity.", source="rgbd")
    sunrgbd_depth: Literal["depth", "depth_bfx"] = arg("depth", "SUN RGB-D depth folder.", source="rgbd")
    scannet_label_map: str | None = arg(
        None, "Path of scannetv2-labels.combined.tsv (default: searched next to the scene).", source="rgbd"
    )
    frame_step: int = arg(1, "Every frame_step-th annotated ScanNet frame.", source="rgbd")
    dataset_name: str | None = arg(None, "Hub dataset id (required).", source="hub")
    dataset_split: str = arg("train", "Split of the Hub dataset.", source="hub")
    dataset_revision: str | None = arg(None, "Revision of the Hub dataset (pin a commit).", source="hub")
    image_column: str = arg("image", "Image column of the Hub dataset.", source="hub")
    image_width: int = arg(640, "Rendered image width.", source="synthetic")
    image_height: int = arg(480, "Rendered image height.", source="synthetic")
    min_objects: int = arg(8, "Fewest objects per scene.", source="synthetic")
    max_objects: int = arg(12, "Most objects per scene.", source="synthetic")
    depth_backend: Literal["depth_pro", "depth_anything"] = arg(
        "depth_pro", "Depth model family (inputs without depth).", source=PERCEPTION
    )
    depth_model: str = arg("apple/DepthPro-hf", "Depth model id.", source=PERCEPTION)
    depth_revision: str | None = arg(None, "Depth model revision.", source=PERCEPTION)
    segmenter: Literal["sam3", "grounding_dino_sam2", "depth_clusters"] = arg(
        "sam3",
        "Instance segmenter: sam3 and grounding_dino_sam2 download their model; depth_clusters needs none "
        "(depth regions off the floor and walls, named --depth-cluster-label).",
        source=PERCEPTION,
    )
    depth_cluster_label: str = arg("region", "Name of depth-cluster segments in the text.", source=PERCEPTION)
    segmenter_model: str = arg(
        "facebook/sam3", "SAM3 model id, or the SAM2 one with grounding_dino_sam2.", source=PERCEPTION
    )
    segmenter_revision: str | None = arg(None, "Segmenter revision.", source=PERCEPTION)
    detector_model: str = arg(
        "IDEA-Research/grounding-dino-tiny", "Grounding DINO id (grounding_dino_sam2).", source=PERCEPTION
    )
    detector_revision: str | None = arg(None, "Detector revision.", source=PERCEPTION)
    categories: list[str] = arg(
        ["chair", "table", "sofa", "bed", "cabinet", "desk", "lamp", "monitor", "plant", "bottle", "cup", "book"],
        "Segmenter text prompts.",
        source=PERCEPTION,
    )
    captioner_model: str | None = arg(
        None, "Florence-2 model id (default: captions written from the objects).", source=PERCEPTION
    )
    captioner_revision: str | None = arg(None, "Captioner revision.", source=PERCEPTION)
    caption_max_new_tokens: int = arg(96, "Caption length limit in tokens.", source=PERCEPTION)
    device: str = arg("cpu", "Torch device of the perception models.", source=PERCEPTION)
    batch_size: int = arg(8, "Images per perception batch.", source=PERCEPTION)

    run_only_arguments = (*BuildArguments.run_only_arguments, "device", "batch_size")

    def __post_init__(self):
        super().__post_init__()
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")
        if self.source in ("rgbd", "image_folder") and self.input_dir is None:
            raise ValueError(f"--input-dir is required for source {self.source!r}")
        check_folder("--input-dir", self.input_dir)
        if self.source == "hub" and self.dataset_name is None:
            raise ValueError("--dataset-name is required for source 'hub'")
        if self.source == "synthetic" and self.num_samples is None:
            raise ValueError("--num-samples is required for source 'synthetic'")
        if self.frame_step < 1:
            raise ValueError(f"frame_step must be at least 1, got {self.frame_step}")


@dataclass
class MultiviewArguments(BuildArguments):
    """The arguments both multi-view builders take: those of [`BuildArguments`] and the synthetic scenes, the view
    selection and the near-tie depth margins (see [`MultiviewVQAArguments`] for each)."""

    image_width: int = arg(640, "Rendered image width.", source="synthetic")
    image_height: int = arg(480, "Rendered image height.", source="synthetic")
    min_objects: int = arg(8, "Fewest objects per scene.", source="synthetic")
    max_objects: int = arg(12, "Most objects per scene.", source="synthetic")
    frames_per_scene: int = arg(12, "Frames along the camera path (at least 8).", source="synthetic")
    view_mix: str = arg(
        ",".join(f"{k}:{v}" for k, v in DEFAULT_VIEW_MIX.items()), "Proportions of 2-, 4- and 8-view samples."
    )
    selection: Literal["covisibility", "lpips_and_covisibility"] = arg(
        "covisibility", "View-pair selection; lpips_and_covisibility needs the lpips package and its weights."
    )
    min_covisibility: float = arg(SelectionThresholds.min_covisibility, "Lower end of the anchors' covisibility band.")
    max_covisibility: float = arg(SelectionThresholds.max_covisibility, "Upper end of the covisibility band.")
    max_candidates: int = arg(SelectionThresholds.max_candidates, "Later frames measured per anchor.")
    depth_margin_m: float = arg(
        Thresholds.depth_margin_m, "Depth difference (m) under which a view is not asked as closer."
    )
    depth_margin_fraction: float = arg(
        Thresholds.depth_margin_fraction, "The same margin relative to the nearer depth (the larger applies)."
    )

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.min_covisibility < self.max_covisibility <= 1.0:
            raise ValueError(
                f"need 0 <= --min-covisibility < --max-covisibility <= 1, got {self.min_covisibility}, "
                f"{self.max_covisibility}"
            )
        if self.max_candidates < 1:
            raise ValueError(f"--max-candidates must be at least 1, got {self.max_candidates}")
        if self.frames_per_scene < 8:
            raise ValueError(f"--frames-per-scene must be at least 8 (8-view samples), got {self.frames_per_scene}")
        self.mix()  # validates

    def mix(self) -> dict[int, float]:
        """`view_mix` parsed: `{2: 160.0, 4: 30.0, 8: 10.0}`."""
        try:
            mix = {int(k): float(v) for k, v in (part.split(":") for part in self.view_mix.split(","))}
        except ValueError as error:
            raise ValueError(f"--view-mix must look like '2:160,4:30,8:10', got {self.view_mix!r}") from error
        if not mix or set(mix) - {2, 4, 8} or min(mix.values()) < 0 or sum(mix.values()) <= 0:
            raise ValueError(f"--view-mix needs views in {{2, 4, 8}} and non-negative weights, got {self.view_mix!r}")
        return mix

    def selection_thresholds(self) -> SelectionThresholds:
        return SelectionThresholds(
            min_covisibility=self.min_covisibility,
            max_covisibility=self.max_covisibility,
            max_candidates=self.max_candidates,
        )

    def thresholds(self) -> Thresholds:
        """The geometric thresholds with this build's near-tie depth margins."""
        return Thresholds(depth_margin_m=self.depth_margin_m, depth_margin_fraction=self.depth_margin_fraction)


@dataclass
class MultiviewVQAArguments(MultiviewArguments):
    """Arguments of `spatialboost-build-multiview-vqa`: those of [`BuildArguments`] (output, samples, seed, shards,
    workers, chunks, yield, Hub, licence, JPEG quality; posed_rgbd samples are start frames) and the ones below
    (every one is also a `--dashed-name` flag).

    Args:
        source (`str`): `synthetic` (default: procedural scenes, exact geometry), `posed_rgbd` (a Redwood- or
            ScanNet-layout sequence with poses) or `frames` (unposed frames, reconstructed).
        input_dir (`str`, *optional*): Sequence folder of `posed_rgbd`.
        num_frames (`int`): Frames sampled from the `frames` folder and reconstructed.
        reconstruction_model (`str`): VGGT weights of the `frames` source (the `vggt` package must be installed);
            VGGT's scale is not metric, so only scale-free questions are asked (`metric_depth=False`).
        reconstruction_revision (`str`, *optional*): Their revision.
        device (`str`): Torch device of the reconstruction model.
        rgbd_layout (`str`): `redwood` (color/, depth/ in mm, camera_primesense.json, trajectory.log) or `scannet`
            (a SensReader export: color/ at full resolution with intrinsic/intrinsic_color.txt, depth/ with
            intrinsic_depth.txt, pose/N.txt; depth is registered onto the colour image, frames with invalid poses
            are skipped and counted).
        image_width (`int`): Synthetic image width.
        image_height (`int`): Synthetic image height.
        min_objects (`int`): Fewest objects per synthetic scene.
        max_objects (`int`): Most objects per synthetic scene.
        frames_per_scene (`int`): Length of the synthetic camera path (at least 8).
        view_mix (`str`): Proportions of 2-, 4- and 8-view samples, `views:weight` pairs.
        selection (`str`): `covisibility` (offline) or `lpips_and_covisibility` (needs `lpips` and its weights).
        min_covisibility (`float`): Lower end of the anchors' covisibility band.
        max_covisibility (`float`): Upper end of the band.
        max_candidates (`int`): Later frames per anchor whose covisibility is measured (bounded work on long scans).
        writer (`str`): `template` (default, deterministic) or `llm` (an OpenAI-compatible endpoint rewrites the
            template's questions and answers; its key is read from `SPATIALBOOST_LLM_API_KEY` or `OPENAI_API_KEY`
            only, so it never reaches the manifest or the card).
        llm_base_url (`str`, *optional*): Endpoint, e.g. `https://api.openai.com/v1` (else `SPATIALBOOST_LLM_BASE_URL`).
        llm_model (`str`, *optional*): Model, e.g. `gpt-4o` (else `SPATIALBOOST_LLM_MODEL`).
        llm_cache_dir (`str`, *optional*): Reply cache (default: `.llm-cache` inside the output directory).
        depth_margin_m (`float`): Depth difference under which "which view sees it closer" is a near-tie (not asked).
        depth_margin_fraction (`float`): Same, relative to the nearer depth (the larger margin applies).
    """

    output_dir: str = arg("spatialboost-multiview-vqa", "Build directory.")
    source: Literal["synthetic", "posed_rgbd", "frames"] = arg(
        "synthetic", "Input: synthetic (rendered, exact geometry), posed_rgbd or frames (unposed, reconstructed)."
    )
    input_dir: str | None = arg(None, "Sequence folder (required).", source="posed_rgbd, frames")
    rgbd_layout: Literal["redwood", "scannet"] = arg("redwood", "Posed RGB-D folder layout.", source="posed_rgbd")
    num_frames: int = arg(16, "Frames sampled from the folder and reconstructed.", source="frames")
    reconstruction_model: str = arg("facebook/VGGT-1B", "VGGT weights (needs the vggt package).", source="frames")
    reconstruction_revision: str | None = arg(None, "Their revision.", source="frames")
    device: str = arg("cpu", "Torch device of the reconstruction model.", source="frames")
    writer: Literal["template", "llm"] = arg(
        "template", "Question writer: template, or llm (an OpenAI-compatible endpoint rewords the questions)."
    )
    llm_base_url: str | None = arg(
        None, "Endpoint of the llm writer (default: $SPATIALBOOST_LLM_BASE_URL).", source="--writer llm"
    )
    llm_model: str | None = arg(
        None, "Model of the llm writer (default: $SPATIALBOOST_LLM_MODEL).", source="--writer llm"
    )
    llm_cache_dir: str | None = arg(
        None, "Reply cache (default: .llm-cache in the output directory).", source="--writer llm"
    )

    run_only_arguments = (*BuildArguments.run_only_arguments, "device", "llm_cache_dir")

    def __post_init__(self):
        super().__post_init__()
        if self.source in ("posed_rgbd", "frames") and self.input_dir is None:
            raise ValueError(f"--input-dir is required for source {self.source!r}")
        check_folder("--input-dir", self.input_dir)
        if self.source == "synthetic" and self.num_samples is None:
            raise ValueError("--num-samples is required for source 'synthetic'")


@dataclass
class MultiviewMultiturnArguments(MultiviewArguments):
    """Arguments of `spatialboost-build-multiview-multiturn`: those of [`MultiviewArguments`] (the stage-2 view mix
    by default too) and `source`, which must be `synthetic`: objects need instance ids shared across views, which
    only the rendered scenes have. The questions are written from templates (no LLM writer).
    """

    output_dir: str = arg("spatialboost-multiview-multiturn", "Build directory.")
    source: Literal["synthetic"] = arg(
        "synthetic", "Input: synthetic only (objects need instance ids shared across views)."
    )

    def __post_init__(self):
        super().__post_init__()
        if self.source != "synthetic":
            raise ValueError(
                f"--source {self.source}: the multi-view multi-turn builder needs object ids shared across views, "
                "which only --source synthetic has"
            )
        if self.num_samples is None:
            raise ValueError("--num-samples is required for source 'synthetic'")
