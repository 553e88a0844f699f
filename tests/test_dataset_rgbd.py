"""Real RGB-D frames (../shared/data/rgbd): decoding, and pixel answers equal to the sensor depth, end to end."""

import numpy as np
import pytest
from dataset_fixtures import RGBD_DIR, assistant_texts
from datasets import load_dataset
from PIL import Image

from dataset_builders.multiturn import MultiturnArguments, build
from dataset_builders.sources import RGBDSource
from dataset_builders.spatial import Thresholds


def _decode_reference(path):
    """Sensor depth in metres, decoded here straight from the published formulas (README of the data folder)."""
    raw = np.asarray(Image.open(path)).astype(np.int64)
    name = path.name
    if name.startswith("TUM"):
        metres = raw / 5000.0
    elif name.startswith("SUN"):
        metres = (((raw >> 3) | (raw << 13)) & 0xFFFF) / 1000.0
    elif name.startswith("NYU"):
        d = ((raw >> 8) | (raw << 8)) & 0xFFFF
        metres = np.where(d < 2047, 351.3 / (1092.5 - d), 0.0)
    else:
        metres = raw / 1000.0
    return np.where(metres > 0, metres, np.nan)


@pytest.mark.parametrize(
    "layout, medians",
    [("redwood", [1.9] * 5), ("single_frames", [2.4, 2.7, 3.3])],  # TUM, SUN, NYU: measured medians
)
def test_decoded_depth_matches_the_published_statistics(layout, medians):
    root = RGBD_DIR / layout
    thresholds = Thresholds()
    source = (
        RGBDSource.from_redwood(root, thresholds)
        if layout == "redwood"
        else RGBDSource.from_single_frames(root, thresholds)
    )
    assert len(source) == len(medians)
    for index, median in enumerate(medians):
        frame = source.load(index)
        invalid = np.isnan(frame.depth).mean()
        assert np.nanmedian(frame.depth) == pytest.approx(median, abs=0.1)
        assert 0.07 <= invalid <= 0.2
        np.testing.assert_allclose(frame.depth, _decode_reference(source.frames[index].depth), rtol=1e-6)
        assert frame.image.size == (640, 480) and frame.depth_origin == "sensor"


def test_redwood_intrinsics_read_column_major():
    frame = RGBDSource.from_redwood(RGBD_DIR / "redwood", Thresholds()).load(0)
    assert (frame.intrinsics.fx, frame.intrinsics.fy, frame.intrinsics.cx, frame.intrinsics.cy) == (
        525.0,
        525.0,
        319.5,
        239.5,
    )


@pytest.mark.parametrize("layout", ["redwood", "single_frames"])
def test_builder_end_to_end_pixel_answers_equal_sensor_depth(tmp_path, layout):
    args = MultiturnArguments(
        source="rgbd",
        input_dir=str(RGBD_DIR / layout),
        rgbd_layout=layout,
        segmenter="depth_clusters",
        output_dir=str(tmp_path / layout),
        seed=0,
        min_yield=0.5,
    )
    manifest = build(args)
    ds = load_dataset(args.output_dir, split="train")
    assert len(ds) == manifest["built"] >= (5 if layout == "redwood" else 2)
    files = {f.color.name: f for f in RGBDSource.from_redwood(RGBD_DIR / "redwood", Thresholds()).frames} | {
        f.color.name: f for f in RGBDSource.from_single_frames(RGBD_DIR / "single_frames", Thresholds()).frames
    }
    checked = 0
    for row in ds:
        provenance = row["provenance"]
        assert provenance["source"] == "rgbd" and provenance["depth_origin"] == "sensor"
        assert provenance["backends"] == [{"role": "segmentation", "model_id": "depth_clusters", "revision": "main"}]
        depth = _decode_reference(files[provenance["sample_id"]].depth)
        for turn, text in zip(row["turns"], assistant_texts(row), strict=True):
            if turn["kind"] == "absolute_depth":
                ((u, v),) = turn["points"]
                assert np.isfinite(depth[v, u])
                assert turn["answer"] == f"{depth[v, u]:.3f}" and f"{depth[v, u]:.3f} m" in text
                checked += 1
            elif turn["kind"] == "relative_depth":
                (ua, va), (ub, vb) = turn["points"]
                assert turn["value"] == pytest.approx(depth[va, ua] - depth[vb, ub], abs=1e-5)
        assert row["images"][0].size == (640, 480)
    assert checked == 3 * len(ds)
