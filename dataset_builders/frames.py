"""What every source hands to the builders (`Frame`), the typed skips, and input normalisation.

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057) builds its data from heterogeneous images; every
source is reduced here to one upright RGB image plus whatever 3D cues it carries, and every bad input becomes a
`SkipSample` with a `SkipReason` that the build counts, never a crash.
"""

from __future__ import annotations

import enum
import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps
from scipy import ndimage

from .geometry import Intrinsics, valid_depth


class SkipReason(str, enum.Enum):
    """Why a sample was not built; the manifest counts each."""

    CORRUPT_IMAGE = "corrupt_image"
    IMAGE_TOO_SMALL = "image_too_small"
    IMAGE_TOO_LARGE = "image_too_large"
    CORRUPT_DEPTH = "corrupt_depth"
    DEPTH_SHAPE_MISMATCH = "depth_shape_mismatch"
    INSUFFICIENT_VALID_DEPTH = "insufficient_valid_depth"
    # Files of the real dataset layouts (`dataset_builders.sources`): a missing or unreadable file of a frame.
    MISSING_FILE = "missing_file"
    CORRUPT_CAMERA = "corrupt_camera"
    CORRUPT_ANNOTATION = "corrupt_annotation"
    MASK_SHAPE_MISMATCH = "mask_shape_mismatch"
    TOO_FEW_OBJECTS = "too_few_objects"
    NO_POINT_PAIR = "no_point_pair"
    NO_OBJECT_PAIR = "no_object_pair"
    # Multi-view samples (`dataset_builders.views`).
    MISSING_VIEW = "missing_view"
    VIEW_SIZE_MISMATCH = "view_size_mismatch"
    DEGENERATE_POSE = "degenerate_pose"
    NO_OVERLAP = "no_overlap"
    NO_VIEW_PAIR_IN_BAND = "no_view_pair_in_band"
    TOO_FEW_VIEWS_BETWEEN = "too_few_views_between"
    EXPANSION_INVALID = "expansion_invalid"
    # LLM question writer (`dataset_builders.writers`).
    LLM_FAILED = "llm_failed"
    LLM_INCONSISTENT = "llm_inconsistent"


class BackendUnavailableError(RuntimeError):
    """A perception backend's weights cannot be loaded (offline and not cached, a wrong id, a gated model); raised by
    `dataset_builders.perception`, defined here so that the command line can report it without importing torch."""


class SkipSample(Exception):
    """Raised by per-example code for an input that cannot give a correct sample.

    Args:
        reason (`SkipReason`): Counted in the manifest.
        detail (`str`): Human-readable detail for logs.
    """

    def __init__(self, reason: SkipReason, detail: str = ""):
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason


@dataclass
class Instance:
    """One object mask with its category.

    Args:
        mask (`np.ndarray`): `(H, W)` boolean mask in the original image frame.
        category (`str`): Category name, as it will appear in the text.
        score (`float`): Detector confidence (1 for ground truth).
        instance_id (`int`, *optional*): Id of the object in the source's own annotation (e.g. the value in an
            instance image), so answers can be traced back to it.
    """

    mask: np.ndarray
    category: str
    score: float = 1.0
    instance_id: int | None = None


@dataclass
class Frame:
    """One image with the 3D cues known for it; perception fills what is missing.

    Args:
        sample_id (`str`): Stable id within the source (file name, row index, scene seed).
        source (`str`): Source name (`synthetic`, `rgbd`, `image_folder`, `hub`).
        image (`PIL.Image.Image`): Upright RGB image; every 2D coordinate refers to it.
        depth (`np.ndarray`, *optional*): `(H, W)` float32 depth in metres, NaN where unknown.
        intrinsics (`Intrinsics`, *optional*): Pinhole intrinsics of `image`.
        instances (`list[Instance]`, *optional*): Object masks.
        captions (`tuple[str, str]`, *optional*): Brief and detailed scene captions (from a captioner).
        metric_depth (`bool`): Whether depth is metric (sensor, synthetic, metric model).
        depth_origin (`str`): Where depth came from: `synthetic`, `sensor` or a depth model.
        intrinsics_origin (`str`): Where intrinsics came from: `synthetic`, `sensor`, `exif`, a depth model, `default`.
        exif_focal_px (`float`, *optional*): Focal length in pixels from EXIF, when present.
        backends (`list[dict[str, str]]`): Perception backends that produced it (`role`, `model_id`, `revision`).
        up_camera (`np.ndarray`, *optional*): `(3,)` unit vector against gravity in the camera frame, when the
            dataset knows it (SUN RGB-D's Rtilt, ScanNet's axis alignment, ARKit gravity, a rendered pose); the
            answer frame then uses it instead of estimating one.
        up_origin (`str`): Where `up_camera` came from (e.g. `annotated:up_camera`, `sunrgbd:extrinsics`).
        instances_origin (`str`): Where `instances` came from: `synthetic`, `given` (the dataset's annotation
            files) or a segmenter's model id.
    """

    sample_id: str
    source: str
    image: Image.Image
    depth: np.ndarray | None = None
    intrinsics: Intrinsics | None = None
    instances: list[Instance] | None = None
    captions: tuple[str, str] | None = None
    metric_depth: bool = True
    depth_origin: str = ""
    intrinsics_origin: str = ""
    exif_focal_px: float | None = None
    backends: list[dict[str, str]] = field(default_factory=list)
    up_camera: np.ndarray | None = None
    up_origin: str = ""
    instances_origin: str = ""


# EXIF tags: the Exif sub-IFD pointer, and the 35 mm-equivalent focal length inside it.
_EXIF_IFD = 0x8769
_FOCAL_LENGTH_35MM = 0xA405
_FULL_FRAME_DIAGONAL_MM = float(np.hypot(36.0, 24.0))


def exif_focal_px(image: Image.Image, width: int, height: int) -> float | None:
    """Focal length in pixels from the EXIF 35 mm-equivalent focal length, or `None` when absent.

    The 35 mm equivalent is defined on the diagonal, so it holds for either orientation of the upright image.
    """
    focal_35mm = image.getexif().get_ifd(_EXIF_IFD).get(_FOCAL_LENGTH_35MM)
    if not focal_35mm:
        return None
    return float(focal_35mm) * float(np.hypot(width, height)) / _FULL_FRAME_DIAGONAL_MM


def decode_image(data: bytes, min_side: int, max_pixels: int) -> tuple[Image.Image, float | None]:
    """Decode image bytes to an upright 8-bit RGB image and its EXIF focal length in pixels.

    Args:
        data (`bytes`): Encoded image (any format Pillow reads).
        min_side (`int`): Shorter side below which the image is skipped (`IMAGE_TOO_SMALL`).
        max_pixels (`int`): Pixel count above which the image is skipped before decoding (`IMAGE_TOO_LARGE`).

    Raises:
        SkipSample: `CORRUPT_IMAGE`, `IMAGE_TOO_SMALL` or `IMAGE_TOO_LARGE`.
    """
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > max_pixels:
            raise SkipSample(SkipReason.IMAGE_TOO_LARGE, f"{image.width}x{image.height}")
        image.load()
    except Image.DecompressionBombError as error:
        # Pillow refuses headers above twice its own pixel limit while opening, before `max_pixels` can be checked.
        raise SkipSample(SkipReason.IMAGE_TOO_LARGE, str(error)) from error
    except (OSError, SyntaxError, ValueError) as error:
        # Pillow reports unknown formats and truncated data as OSError, some broken headers as SyntaxError/ValueError.
        raise SkipSample(SkipReason.CORRUPT_IMAGE, str(error)) from error
    focal = exif_focal_px(image, image.width, image.height)
    image = to_rgb(ImageOps.exif_transpose(image))
    if min(image.size) < min_side:
        raise SkipSample(SkipReason.IMAGE_TOO_SMALL, f"{image.width}x{image.height}")
    return image, focal


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: 16-bit and float greyscale are rescaled, transparency is flattened onto white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        # 16-bit data spans 0..65535; integer images holding 8-bit values (some PNG/PGM writers) stay as they are.
        scale = 65535.0 if values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values / scale * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


# A pixel is covered when a valid reading lies within this many pixels (Chebyshev distance). Sparse depth (a point
# cloud subsampled onto the pixel grid, e.g. SUN RGB-D's 50 000-point clouds: 13 % of the pixels) covers the image
# as well as dense depth does, while a map that is empty over large areas does not.
COVERAGE_RADIUS_PX = 2


def depth_coverage(valid: np.ndarray, radius: int = COVERAGE_RADIUS_PX) -> float:
    """Share of the pixels with a valid depth reading within `radius` pixels."""
    if radius <= 0:
        return float(valid.mean())
    return float(ndimage.maximum_filter(valid, size=2 * radius + 1, mode="constant", cval=False).mean())


def clean_depth(depth: np.ndarray, image_size: tuple[int, int], min_valid_fraction: float) -> np.ndarray:
    """Float32 depth with NaN wherever the value is not finite and positive; checked against the image size.

    Args:
        depth (`np.ndarray`): `(H, W)` depth in metres.
        image_size (`tuple[int, int]`): `(width, height)` of the image it belongs to.
        min_valid_fraction (`float`): Smallest share of the image that valid depth must cover (`depth_coverage`:
            within `COVERAGE_RADIUS_PX` of a reading), so dense maps with large holes are refused and evenly sparse
            ones are not.

    Raises:
        SkipSample: `DEPTH_SHAPE_MISMATCH` or `INSUFFICIENT_VALID_DEPTH`.
    """
    if depth.shape != (image_size[1], image_size[0]):
        width, height = image_size
        depth_size = f"{depth.shape[1]}x{depth.shape[0]}" if depth.ndim == 2 else f"of shape {depth.shape}"
        transposed = " (transposed?)" if depth.shape == (width, height) else ""
        raise SkipSample(
            SkipReason.DEPTH_SHAPE_MISMATCH,
            f"depth map is {depth_size}, image is {width}x{height} (W x H){transposed}",
        )
    depth = depth.astype(np.float32)
    valid = valid_depth(depth)
    coverage = depth_coverage(valid) if valid.mean() < min_valid_fraction else 1.0
    if coverage < min_valid_fraction:
        raise SkipSample(
            SkipReason.INSUFFICIENT_VALID_DEPTH, f"{valid.mean():.1%} valid, covering {coverage:.1%} of the image"
        )
    return np.where(valid, depth, np.float32(np.nan))
