"""Reconstruction of unposed frames (frame folders, videos) into posed views, and fixing its metric scale.

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057) also draws multi-view samples from unposed video.
Frames are sampled, a reconstruction backend estimates depth, intrinsics and poses, and the scale is made metric
from known poses or a metric depth model; `is_metric` records whether that happened, and absolute distances may only
be asked when it is true.

Backends: `KnownPoses` (the data already has depth and poses) and `VGGTBackend` (the `vggt` package of
facebookresearch/vggt, installed by the user; its weights come from the Hub). A third backend would justify a
common base class; two do not.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from .geometry import Intrinsics, valid_depth
from .views import FrameCamera, PosedView


@dataclass(frozen=True)
class Reconstruction:
    """Posed views estimated from frames, with what is known about their scale.

    Args:
        views (`list[PosedView]`): Depth, intrinsics and camera-to-world poses, one per frame.
        is_metric (`bool`): Whether depths and translations are in metres.
        scale_source (`str`): `known_poses`, `metric_depth`, `sensor` (already metric) or `none`.
        backend (`str`): Model id (and revision) or `known_poses`.
    """

    views: list[PosedView]
    is_metric: bool
    scale_source: str
    backend: str


class ReconstructedSequence:
    """A reconstruction as a sequence of posed views (`views.select_views` reads `len()`, `camera(i)`, `view(i)`).

    Args:
        sequence_id (`str`): Name recorded in provenance.
        reconstruction (`Reconstruction`): Its views.
    """

    def __init__(self, sequence_id: str, reconstruction: Reconstruction):
        self.sequence_id, self.reconstruction = sequence_id, reconstruction

    def __len__(self) -> int:
        return len(self.reconstruction.views)

    def view(self, frame: int) -> PosedView:
        return self.reconstruction.views[frame]

    def camera(self, frame: int) -> FrameCamera:
        view = self.reconstruction.views[frame]
        return FrameCamera(view.camera_to_world, view.intrinsics, view.image.size)


class FrameFolderSource:
    """Unposed frames of one folder (a video's frames, in name order), reconstructed once; sample `i` starts at `i`.

    Args:
        root (`str` or `Path`): Folder of images.
        num_frames (`int`): Frames sampled evenly from the folder.
        backend: Object with `reconstruct(paths) -> Reconstruction` (e.g. `VGGTBackend`).
    """

    name = "frames"

    def __init__(self, root: str | Path, num_frames: int, backend):
        self.root = Path(root)
        files = sorted(p for p in self.root.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        self.files = [files[i] for i in sample_frame_indices(len(files), min(num_frames, len(files)))]
        self.backend = backend
        self._sequence: ReconstructedSequence | None = None

    def __len__(self) -> int:
        return max(len(self.files) - 1, 0)

    def load(self, index: int) -> tuple[ReconstructedSequence, int]:
        if self._sequence is None:
            self._sequence = ReconstructedSequence(self.root.name, self.backend.reconstruct(self.files))
        return self._sequence, index

    @property
    def is_metric(self) -> bool:
        return self.load(0)[0].reconstruction.is_metric


def sample_frame_indices(num_available: int, num_frames: int) -> list[int]:
    """`num_frames` indices spread evenly over `num_available` frames, first and last included."""
    if num_available < num_frames:
        raise ValueError(f"{num_available} frames available, {num_frames} wanted")
    return [int(round(i)) for i in np.linspace(0, num_available - 1, num_frames)]


def read_video_frames(path: str | Path, num_frames: int) -> list[Image.Image]:
    """`num_frames` evenly spaced frames of a video, decoded with PyAV.

    Raises:
        RuntimeError: When PyAV is not installed (`pip install av`).
    """
    if importlib.util.find_spec("av") is None:
        raise RuntimeError("reading videos needs PyAV (pip install av); or extract frames to a folder first")
    import av

    with av.open(str(path)) as container:
        frames = [frame.to_image() for frame in container.decode(video=0)]
    return [frames[i] for i in sample_frame_indices(len(frames), num_frames)]


def known_poses(views: list[PosedView]) -> Reconstruction:
    """The backend for data that has metric depth and poses already (RGB-D sequences, synthetic scenes)."""
    return Reconstruction(views, True, "sensor", "known_poses")


class VGGTBackend:
    """VGGT (Wang et al., CVPR 2025) feed-forward reconstruction: depth, intrinsics and poses up to scale.

    Args:
        model_id (`str`): Hub id of the weights.
        revision (`str`, *optional*): Their revision.
        device (`str`): Torch device.

    Raises:
        RuntimeError: When the `vggt` package is not installed.
    """

    def __init__(self, model_id: str = "facebook/VGGT-1B", revision: str | None = None, device: str = "cpu"):
        if importlib.util.find_spec("vggt") is None:
            raise RuntimeError(
                "the VGGT backend needs the `vggt` package: pip install git+https://github.com/facebookresearch/vggt "
                "(its weights are downloaded from the Hub on first use); posed RGB-D sources need no backend."
            )
        from vggt.models.vggt import VGGT

        self.model_id, self.revision, self.device = model_id, revision, device
        self.model = VGGT.from_pretrained(model_id, revision=revision).to(device).eval()

    def reconstruct(self, frames: list[Path]) -> Reconstruction:
        """Views of image files, at their original size; the scale is VGGT's own (`is_metric=False`)."""
        import torch
        from vggt.utils.load_fn import load_and_preprocess_images
        from vggt.utils.pose_enc import pose_encoding_to_extri_intri

        images = load_and_preprocess_images([str(f) for f in frames]).to(self.device)  # (frames, 3, h, w)
        with torch.no_grad():
            predictions = self.model(images)
        extrinsic, intrinsic = pose_encoding_to_extri_intri(predictions["pose_enc"], images.shape[-2:])
        depth = predictions["depth"][0, ..., 0].cpu().numpy()  # (frames, h, w), VGGT's scale
        views = []
        for i, path in enumerate(frames):
            image = Image.open(path).convert("RGB")
            sx, sy = image.width / images.shape[-1], image.height / images.shape[-2]
            k = intrinsic[0, i].cpu().numpy()
            world_to_camera = np.eye(4)
            world_to_camera[:3] = extrinsic[0, i].cpu().numpy()
            resized = np.asarray(Image.fromarray(depth[i]).resize(image.size, Image.NEAREST), dtype=np.float32)
            views.append(
                PosedView(
                    path.name,
                    image,
                    resized,
                    Intrinsics(k[0, 0] * sx, k[1, 1] * sy, k[0, 2] * sx, k[1, 2] * sy),
                    np.linalg.inv(world_to_camera),
                )
            )
        return Reconstruction(views, False, "none", f"{self.model_id}@{self.revision or 'main'}")


def scale_from_known_poses(reconstruction: Reconstruction, metric_camera_to_world: list[np.ndarray]) -> float:
    """Metres per reconstruction unit: the median ratio of camera-centre distances, metric over reconstructed.

    Raises:
        ValueError: When the known cameras barely move (under 1 cm apart): the ratio is then undefined.
    """
    ours = np.array([v.camera_to_world[:3, 3] for v in reconstruction.views])
    known = np.array([p[:3, 3] for p in metric_camera_to_world])
    i, j = np.triu_indices(len(ours), k=1)
    known_gaps, our_gaps = np.linalg.norm(known[i] - known[j], axis=1), np.linalg.norm(ours[i] - ours[j], axis=1)
    usable = (known_gaps > 0.01) & (our_gaps > 0)
    if not usable.any():
        raise ValueError("the known cameras are less than 1 cm apart: their poses cannot fix the scale")
    return float(np.median(known_gaps[usable] / our_gaps[usable]))


def scale_from_metric_depth(reconstruction: Reconstruction, metric_depths: list[np.ndarray]) -> float:
    """Metres per reconstruction unit: the median ratio of a metric depth model's depth to the reconstructed one."""
    ratios = []
    for view, metric in zip(reconstruction.views, metric_depths, strict=True):
        both = valid_depth(view.depth) & valid_depth(metric)
        ratios.append(metric[both] / view.depth[both])
    ratios = np.concatenate(ratios)
    if len(ratios) == 0:
        raise ValueError("no pixel has both a reconstructed and a metric depth")
    return float(np.median(ratios))


def apply_scale(reconstruction: Reconstruction, scale: float, scale_source: str) -> Reconstruction:
    """The reconstruction in metres: depths and camera translations multiplied by `scale`; `is_metric=True`."""
    views = []
    for view in reconstruction.views:
        pose = view.camera_to_world.copy()
        pose[:3, 3] *= scale
        views.append(replace(view, depth=(view.depth * scale).astype(np.float32), camera_to_world=pose))
    return Reconstruction(views, True, scale_source, reconstruction.backend)
