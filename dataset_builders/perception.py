"""Perception backends that give plain images the 3D cues synthetic scenes and RGB-D frames already carry.

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057) estimates metric depth, instance masks with
labels and captions with off-the-shelf models. Each backend is configured by a model id and revision and built on
transformers classes:

- metric depth: Depth Pro (which also estimates the focal length) or Depth Anything V2 metric;
- instance masks with labels: SAM3 prompted with category names, or Grounding DINO boxes refined by SAM2; without
  a model and only when asked for, `DepthClusterSegmenter` cuts depth into unnamed regions (RGB-D frames only).
  Sources with masks of their own (the annotated, SUN RGB-D and ScanNet layouts) run no segmenter;
- captions: Florence-2.

Intrinsics of a plain image come, in order of preference, from EXIF (35 mm-equivalent focal length), from Depth
Pro's focal estimate, or from a default 60-degree field of view (recorded as `intrinsics_origin`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from transformers import (
    AutoModelForDepthEstimation,
    AutoProcessor,
    DepthProForDepthEstimation,
    DepthProImageProcessor,
    Florence2ForConditionalGeneration,
    GroundingDinoForObjectDetection,
    Sam2Model,
    Sam3Model,
)

from .frames import BackendUnavailableError, Frame, Instance, clean_depth
from .geometry import Intrinsics, depth_edges, estimate_gravity, unproject, valid_depth


DEFAULT_FIELD_OF_VIEW_DEG = 60.0
# Licences of the default checkpoints, for the dataset card; other checkpoints say "see model card".
KNOWN_LICENCES = {
    "apple/DepthPro-hf": "apple-amlr",
    "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf": "apache-2.0",
    "facebook/sam3": "sam-license",
    "IDEA-Research/grounding-dino-tiny": "apache-2.0",
    "facebook/sam2.1-hiera-tiny": "apache-2.0",
    "florence-community/Florence-2-base": "mit",
}


_MASK_HINT = (
    "Frames with masks of their own need no segmenter: use --source rgbd --rgbd-layout annotated, sunrgbd or "
    "scannet, whose instance masks and names are read from the files (formats in dataset_builders/sources.py). "
    "Otherwise make the weights available (huggingface-cli download {model_id}, then run with HF_HUB_OFFLINE=1), or "
    "ask for unnamed depth regions with --segmenter depth_clusters."
)
_HINTS = {
    "depth": "Sources with depth of their own (--source rgbd) need no depth model. Otherwise make the weights "
    "available (huggingface-cli download {model_id}, then run with HF_HUB_OFFLINE=1).",
    "segmentation": _MASK_HINT,
    "caption": "Leave --captioner-model unset to write captions from the objects, or make the weights available "
    "(huggingface-cli download {model_id}).",
}


def load_pretrained(loader, model_id: str, revision: str | None, role: str):
    """`loader.from_pretrained(model_id, revision=revision)`, or a `BackendUnavailableError` that names the model and
    says what to do instead, for a `role` of `depth`, `segmentation` or `caption`."""
    try:
        return loader.from_pretrained(model_id, revision=revision)
    except (OSError, ValueError) as error:  # transformers reports missing files, offline hubs and bad ids so
        raise BackendUnavailableError(
            f"the {role} model {model_id!r} (revision {revision or 'main'}) cannot be loaded: {error}\n"
            + _HINTS[role].format(model_id=model_id)
        ) from error


@dataclass
class DepthPrediction:
    """Metric depth at the original resolution and, when the model estimates it, the focal length in pixels."""

    depth: np.ndarray
    focal_px: float | None


class DepthProEstimator:
    """Depth Pro: metric depth and focal length, post-processed to the original image size.

    Args:
        model_id (`str`): Hub id of a `DepthProForDepthEstimation` checkpoint.
        revision (`str`, *optional*): Revision (pin a commit for reproducible builds).
        device (`str`): Torch device.
        model (`DepthProForDepthEstimation`, *optional*): An already built model (tests pass tiny random ones).
        processor (`DepthProImageProcessor`, *optional*): Its image processor.
    """

    role = "depth"

    def __init__(self, model_id: str, revision: str | None = None, device: str = "cpu", model=None, processor=None):
        self.model_id, self.revision, self.device = model_id, revision, device
        self.model = (
            (model or load_pretrained(DepthProForDepthEstimation, model_id, revision, "depth")).to(device).eval()
        )
        self.processor = processor or load_pretrained(DepthProImageProcessor, model_id, revision, "depth")

    @torch.inference_mode()
    def __call__(self, images: list[Image.Image]) -> list[DepthPrediction]:
        inputs = self.processor(images=images, return_tensors="pt").to(self.device)
        outputs = self.model(**inputs)
        results = self.processor.post_process_depth_estimation(outputs, target_sizes=[im.size[::-1] for im in images])
        return [DepthPrediction(r["predicted_depth"].float().cpu().numpy(), float(r["focal_length"])) for r in results]


class DepthAnythingEstimator:
    """Depth Anything V2 metric (indoor or outdoor checkpoints): metric depth, no focal length.

    Args:
        model_id (`str`): Hub id of a metric Depth Anything V2 checkpoint.
        revision (`str`, *optional*): Revision.
        device (`str`): Torch device.
        model (`DepthAnythingForDepthEstimation`, *optional*): An already built model.
        processor (`DPTImageProcessor`, *optional*): Its image processor.
    """

    role = "depth"

    def __init__(self, model_id: str, revision: str | None = None, device: str = "cpu", model=None, processor=None):
        self.model_id, self.revision, self.device = model_id, revision, device
        self.model = (
            (model or load_pretrained(AutoModelForDepthEstimation, model_id, revision, "depth")).to(device).eval()
        )
        self.processor = processor or load_pretrained(AutoProcessor, model_id, revision, "depth")
        if self.model.config.depth_estimation_type != "metric":
            raise ValueError(f"{model_id} predicts relative depth; a metric Depth Anything V2 checkpoint is required")

    @torch.inference_mode()
    def __call__(self, images: list[Image.Image]) -> list[DepthPrediction]:
        inputs = self.processor(images=images, return_tensors="pt").to(self.device)
        outputs = self.model(**inputs)
        results = self.processor.post_process_depth_estimation(outputs, target_sizes=[im.size[::-1] for im in images])
        return [DepthPrediction(r["predicted_depth"].float().cpu().numpy(), None) for r in results]


def _resolve_overlaps(instances: list[Instance], max_iou: float) -> list[Instance]:
    """Highest score first: drop near-duplicates (one object found under two prompts), give shared pixels to the
    more confident instance, and drop instances left empty."""
    kept: list[Instance] = []
    claimed = None
    for instance in sorted(instances, key=lambda i: -i.score):
        mask = instance.mask
        if any((mask & k.mask).sum() > max_iou * (mask | k.mask).sum() for k in kept):
            continue
        claimed = np.zeros_like(mask) if claimed is None else claimed
        mask = mask & ~claimed
        if mask.any():
            kept.append(Instance(mask, instance.category, instance.score))
            claimed |= mask
    return kept


class Sam3Segmenter:
    """SAM3 promptable concept segmentation: every category name is a text prompt; instances above `threshold`.

    Args:
        model_id (`str`): Hub id of a `Sam3Model` checkpoint (e.g. `facebook/sam3`).
        categories (`list[str]`): Category names, used as prompts and as labels.
        revision (`str`, *optional*): Revision.
        device (`str`): Torch device.
        threshold (`float`): Instance score threshold.
        mask_threshold (`float`): Mask binarisation threshold.
        max_iou (`float`): Overlap above which the lower-scoring of two instances is a duplicate.
        model (`Sam3Model`, *optional*): An already built model.
        processor (`Sam3Processor`, *optional*): Its processor.
    """

    role = "segmentation"

    def __init__(
        self,
        model_id: str,
        categories: list[str],
        revision: str | None = None,
        device: str = "cpu",
        threshold: float = 0.5,
        mask_threshold: float = 0.5,
        max_iou: float = 0.7,
        model=None,
        processor=None,
    ):
        self.model_id, self.revision, self.device, self.categories = model_id, revision, device, list(categories)
        self.threshold, self.mask_threshold, self.max_iou = threshold, mask_threshold, max_iou
        self.model = (model or load_pretrained(Sam3Model, model_id, revision, "segmentation")).to(device).eval()
        self.processor = processor or load_pretrained(AutoProcessor, model_id, revision, "segmentation")

    @torch.inference_mode()
    def __call__(self, frames: list[Frame]) -> list[list[Instance]]:
        results = []
        for frame in frames:
            # One row per prompt: SAM3 answers one text concept per (image, prompt) pair.
            images = [frame.image] * len(self.categories)
            inputs = self.processor(images=images, text=self.categories, return_tensors="pt").to(self.device)
            outputs = self.model(**inputs)
            detections = self.processor.post_process_instance_segmentation(
                outputs, self.threshold, self.mask_threshold, target_sizes=[frame.image.size[::-1]] * len(images)
            )
            instances = [
                Instance(mask.bool().cpu().numpy(), category, float(score))
                for category, found in zip(self.categories, detections, strict=True)
                for mask, score in zip(found["masks"], found["scores"], strict=True)
            ]
            results.append(_resolve_overlaps(instances, self.max_iou))
        return results


def phrase_category(phrase: str, categories: list[str]) -> str | None:
    """The category a detected phrase names; `None` when it names none, or several unrelated ones."""
    found = [c for c in categories if re.search(rf"\b{re.escape(c)}\b", phrase)]
    longest = max(found, key=len, default=None)
    # "dining table" also contains "table": the longer name wins when it contains the others.
    return longest if longest is not None and all(c in longest for c in found) else None


class GroundedSam2Segmenter:
    """Grounding DINO boxes for the category names, each refined into a mask by SAM2 (box prompts).

    Args:
        detector_id (`str`): Hub id of a `GroundingDinoForObjectDetection` checkpoint.
        segmenter_id (`str`): Hub id of a `Sam2Model` checkpoint.
        categories (`list[str]`): Category names (lower case), joined into Grounding DINO's `"a. b."` prompt.
        detector_revision (`str`, *optional*): Detector revision.
        segmenter_revision (`str`, *optional*): Segmenter revision.
        device (`str`): Torch device.
        box_threshold (`float`): Box score threshold.
        text_threshold (`float`): Token score threshold that decides a box's phrase.
        max_iou (`float`): Overlap above which the lower-scoring of two instances is a duplicate.
    """

    role = "segmentation"

    def __init__(
        self,
        detector_id: str,
        segmenter_id: str,
        categories: list[str],
        detector_revision: str | None = None,
        segmenter_revision: str | None = None,
        device: str = "cpu",
        box_threshold: float = 0.35,
        text_threshold: float = 0.25,
        max_iou: float = 0.7,
    ):
        self.model_id = f"{detector_id} + {segmenter_id}"
        self.revision = f"{detector_revision or 'main'} + {segmenter_revision or 'main'}"
        self.categories, self.device = list(categories), device
        self.box_threshold, self.text_threshold, self.max_iou = box_threshold, text_threshold, max_iou
        self.detector = load_pretrained(
            GroundingDinoForObjectDetection, detector_id, detector_revision, "segmentation"
        )
        self.detector.to(device).eval()
        self.detector_processor = load_pretrained(AutoProcessor, detector_id, detector_revision, "segmentation")
        self.segmenter = load_pretrained(Sam2Model, segmenter_id, segmenter_revision, "segmentation").to(device).eval()
        self.segmenter_processor = load_pretrained(AutoProcessor, segmenter_id, segmenter_revision, "segmentation")
        self.prompt = " ".join(f"{category}." for category in self.categories)

    @torch.inference_mode()
    def __call__(self, frames: list[Frame]) -> list[list[Instance]]:
        images = [frame.image for frame in frames]
        inputs = self.detector_processor(
            images=images, text=[self.prompt] * len(images), return_tensors="pt", padding=True
        ).to(self.device)
        detections = self.detector_processor.post_process_grounded_object_detection(
            self.detector(**inputs),
            inputs["input_ids"],
            threshold=self.box_threshold,
            text_threshold=self.text_threshold,
            target_sizes=[image.size[::-1] for image in images],
        )
        results = []
        for image, found in zip(images, detections, strict=True):
            boxes = [
                (box.tolist(), float(score), phrase_category(phrase, self.categories))
                for box, score, phrase in zip(found["boxes"], found["scores"], found["text_labels"], strict=True)
            ]
            boxes = [b for b in boxes if b[2] is not None]
            if not boxes:
                results.append([])
                continue
            prompts = self.segmenter_processor(
                images=[image], input_boxes=[[box for box, _, _ in boxes]], return_tensors="pt"
            ).to(self.device)
            outputs = self.segmenter(**prompts, multimask_output=False)
            # (boxes, 1, height, width) boolean masks at the original image size
            masks = self.segmenter_processor.post_process_masks(
                outputs.pred_masks.cpu(), prompts["original_sizes"].cpu()
            )[0][:, 0]
            instances = [
                Instance(mask.numpy(), category, score)
                for mask, (_, score, category) in zip(masks, boxes, strict=True)
            ]
            results.append(_resolve_overlaps(instances, self.max_iou))
        return results


class DepthClusterSegmenter:
    """Model-free instance masks for frames with depth: connected regions between depth jumps, without the room.

    Only runs when asked for (`--segmenter depth_clusters`). Its regions are not known to be objects, so they are
    named `label` (`region` by default) and always told apart by a drawn letter. Left out: the floor (points near
    the lowest horizontal layer, when a trustworthy up direction is found), planar regions wider than
    `max_plane_extent_m` or cut by the image border (walls, floor patches, ceilings, doors), regions farther than
    `max_depth_m`, and regions narrower than `min_extent_m` or wider than `max_extent_m`. Objects standing apart on
    a floor come out as one region each.

    Args:
        edge_jump (`float`): Relative depth jump that separates regions.
        floor_distance_m (`float`): Points this close to the floor height are floor.
        min_area_fraction (`float`): Smallest region, as a share of the image.
        max_area_fraction (`float`): Largest region (walls and other large surfaces are left out).
        max_plane_extent_m (`float`): Planar regions wider than this are structure, not objects.
        max_depth_m (`float`): Regions whose median depth is beyond this are background.
        min_extent_m (`float`): Regions narrower than this (specks, fragments) are left out.
        max_extent_m (`float`): Regions wider than this (more than furniture: walls meeting the ceiling) too.
        label (`str`): Category name given to every region.
    """

    role = "segmentation"
    model_id = "depth_clusters"
    revision = ""

    def __init__(
        self,
        edge_jump: float = 0.03,
        floor_distance_m: float = 0.04,
        min_area_fraction: float = 0.003,
        max_area_fraction: float = 0.15,
        max_plane_extent_m: float = 1.5,
        max_depth_m: float = 6.0,
        min_extent_m: float = 0.1,
        max_extent_m: float = 3.0,
        label: str = "region",
    ):
        self.edge_jump, self.floor_distance_m = edge_jump, floor_distance_m
        self.min_area_fraction, self.max_area_fraction = min_area_fraction, max_area_fraction
        self.max_plane_extent_m, self.max_depth_m = max_plane_extent_m, max_depth_m
        self.min_extent_m, self.max_extent_m = min_extent_m, max_extent_m
        self.label = label

    def __call__(self, frames: list[Frame]) -> list[list[Instance]]:
        return [self._segment(frame) for frame in frames]

    def _segment(self, frame: Frame) -> list[Instance]:
        depth, k = frame.depth, frame.intrinsics
        height, width = depth.shape
        free = ~depth_edges(depth, self.edge_jump)
        vs, us = np.nonzero(free)
        if len(vs) < 3:
            return []
        points = unproject(us.astype(np.float64), vs.astype(np.float64), depth[vs, us].astype(np.float64), k)
        rng = np.random.default_rng(0)
        sample = points[rng.choice(len(points), size=min(len(points), 6000), replace=False)]
        gravity = estimate_gravity(sample, rng).frame
        if gravity.aligned:
            heights = points @ gravity.rotation[2]
            floor = np.abs(heights - np.percentile(heights, 2)) < self.floor_distance_m
            free[vs[floor], us[floor]] = False
        labels, count = ndimage.label(free)
        areas = np.bincount(labels.ravel(), minlength=count + 1)
        instances = []
        for i in range(1, count + 1):
            if not self.min_area_fraction * height * width <= areas[i] <= self.max_area_fraction * height * width:
                continue
            mask = labels == i
            if self._is_object(mask, depth, k):
                instances.append(Instance(mask, self.label))
        return instances

    def _is_object(self, mask: np.ndarray, depth: np.ndarray, k: Intrinsics) -> bool:
        vs, us = np.nonzero(mask & valid_depth(depth))
        if len(vs) < 30:
            return False
        pick = np.linspace(0, len(vs) - 1, min(len(vs), 2000)).astype(int)
        points = unproject(us[pick].astype(np.float64), vs[pick].astype(np.float64), depth[vs[pick], us[pick]], k)
        if np.median(points[:, 2]) > self.max_depth_m:
            return False
        centred = points - points.mean(axis=0)
        _, singular, axes = np.linalg.svd(centred, full_matrices=False)
        extent = np.ptp(centred @ axes.T, axis=0)  # along the principal axes, largest first
        if extent[0] < self.min_extent_m or extent[0] > self.max_extent_m:
            return False
        # Planar: almost every point within 2 cm (or the sensor noise there) of the best plane. A plane wider than
        # furniture, or one the image border cuts (a patch of wall or floor in a corner), is the room.
        residual = np.abs(centred @ axes[2])
        planar = np.mean(residual < np.maximum(0.02, 0.005 * points[:, 2] ** 2)) > 0.9
        touches_border = bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
        return not (planar and (extent[0] > self.max_plane_extent_m or touches_border))


class Florence2Captioner:
    """Florence-2 brief (`<CAPTION>`) and detailed (`<DETAILED_CAPTION>`) captions, greedy or beam search.

    Args:
        model_id (`str`): Hub id of a `Florence2ForConditionalGeneration` checkpoint.
        revision (`str`, *optional*): Revision.
        device (`str`): Torch device.
        max_new_tokens (`int`): Generation length limit.
        num_beams (`int`): Beam width.
        model (`Florence2ForConditionalGeneration`, *optional*): An already built model.
        processor (`Florence2Processor`, *optional*): Its processor.
    """

    role = "caption"
    tasks = ("<CAPTION>", "<DETAILED_CAPTION>")

    def __init__(
        self,
        model_id: str,
        revision: str | None = None,
        device: str = "cpu",
        max_new_tokens: int = 96,
        num_beams: int = 3,
        model=None,
        processor=None,
    ):
        self.model_id, self.revision, self.device = model_id, revision, device
        self.max_new_tokens, self.num_beams = max_new_tokens, num_beams
        self.model = (model or load_pretrained(Florence2ForConditionalGeneration, model_id, revision, "caption")).to(
            device
        )
        self.model.eval()
        self.processor = processor or load_pretrained(AutoProcessor, model_id, revision, "caption")

    @torch.inference_mode()
    def __call__(self, images: list[Image.Image]) -> list[tuple[str, str]]:
        captions = []
        for task in self.tasks:
            inputs = self.processor(text=[task] * len(images), images=images, return_tensors="pt").to(self.device)
            generated = self.model.generate(
                **inputs, max_new_tokens=self.max_new_tokens, num_beams=self.num_beams, do_sample=False
            )
            texts = self.processor.batch_decode(generated, skip_special_tokens=False)
            captions.append(
                [
                    self.processor.post_process_generation(text, task=task, image_size=image.size)[task].strip()
                    for text, image in zip(texts, images, strict=True)
                ]
            )
        return list(zip(*captions, strict=True))


@dataclass
class Perception:
    """The configured backends; `complete` fills in what each frame lacks.

    Args:
        depth (`DepthProEstimator` or `DepthAnythingEstimator`, *optional*): For frames without depth.
        segmenter (`Sam3Segmenter`, `GroundedSam2Segmenter` or `DepthClusterSegmenter`, *optional*): For frames
            without instances.
        captioner (`Florence2Captioner`, *optional*): For frames without captions.
        min_valid_depth_fraction (`float`): Passed to `clean_depth` for estimated depth.
    """

    depth: DepthProEstimator | DepthAnythingEstimator | None = None
    segmenter: Sam3Segmenter | GroundedSam2Segmenter | DepthClusterSegmenter | None = None
    captioner: Florence2Captioner | None = None
    min_valid_depth_fraction: float = 0.3
    backends: list[dict[str, str]] = field(init=False)

    def __post_init__(self):
        self.backends = [
            {
                "role": backend.role,
                "model_id": backend.model_id,
                "revision": backend.revision or "main",
                "licence": KNOWN_LICENCES.get(backend.model_id, "see model card"),
            }
            for backend in (self.depth, self.segmenter, self.captioner)
            if backend is not None
        ]

    @classmethod
    def from_arguments(cls, args, needs_depth: bool, needs_masks: bool = True) -> Perception:
        """Backends named by `MultiturnArguments` (`needs_depth` / `needs_masks`: the source has no depth / masks of
        its own; with masks of its own no segmenter is built, so none is loaded or run).

        Raises:
            BackendUnavailableError: When a model's weights cannot be loaded.
        """
        depth = None
        if needs_depth:
            estimator = DepthProEstimator if args.depth_backend == "depth_pro" else DepthAnythingEstimator
            depth = estimator(args.depth_model, args.depth_revision, args.device)
        if not needs_masks:
            segmenter = None
        elif args.segmenter == "depth_clusters":
            segmenter = DepthClusterSegmenter(label=args.depth_cluster_label)
        elif args.segmenter == "sam3":
            segmenter = Sam3Segmenter(args.segmenter_model, args.categories, args.segmenter_revision, args.device)
        else:
            segmenter = GroundedSam2Segmenter(
                args.detector_model,
                args.segmenter_model,
                args.categories,
                args.detector_revision,
                args.segmenter_revision,
                args.device,
            )
        captioner = (
            Florence2Captioner(
                args.captioner_model, args.captioner_revision, args.device, max_new_tokens=args.caption_max_new_tokens
            )
            if args.captioner_model
            else None
        )
        return cls(depth, segmenter, captioner)

    def complete(self, frames: list[Frame]) -> list[Frame]:
        """Run each backend, batched, on the frames that lack its output; returns the same frames, filled in."""
        needing = [f for f in frames if f.depth is None]
        if needing and self.depth is None:
            raise ValueError("frames without depth need a depth backend")
        if needing:
            for frame, prediction in zip(needing, self.depth([f.image for f in needing]), strict=True):
                frame.depth = clean_depth(prediction.depth, frame.image.size, self.min_valid_depth_fraction)
                frame.depth_origin = self.depth.model_id
                frame.metric_depth = True
                frame.intrinsics, frame.intrinsics_origin = self._intrinsics(frame, prediction)
        needing = [f for f in frames if f.instances is None]
        if needing and self.segmenter is not None:
            for frame, instances in zip(needing, self.segmenter(needing), strict=True):
                frame.instances = instances
                frame.instances_origin = self.segmenter.model_id
        needing = [f for f in frames if f.captions is None]
        if needing and self.captioner is not None:
            for frame, captions in zip(needing, self.captioner([f.image for f in needing]), strict=True):
                frame.captions = captions
        for frame in frames:
            frame.backends = [{k: b[k] for k in ("role", "model_id", "revision")} for b in self.backends]
        return frames

    def _intrinsics(self, frame: Frame, prediction: DepthPrediction) -> tuple[Intrinsics, str]:
        width, height = frame.image.size
        centre = ((width - 1) / 2, (height - 1) / 2)
        if frame.exif_focal_px is not None:
            if prediction.focal_px is not None:
                # Depth Pro's metric depth is proportional to the focal length it assumed; the camera's own is exact.
                frame.depth = frame.depth * np.float32(frame.exif_focal_px / prediction.focal_px)
            return Intrinsics(frame.exif_focal_px, frame.exif_focal_px, *centre), "exif"
        if prediction.focal_px is not None:
            return Intrinsics(prediction.focal_px, prediction.focal_px, *centre), self.depth.model_id
        return Intrinsics.from_fov(width, height, DEFAULT_FIELD_OF_VIEW_DEG), "default"
