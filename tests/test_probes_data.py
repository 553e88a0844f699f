"""Probe data against ground truth: synthetic scenes, RGB-D folders, Hub-style datasets by column mapping."""

from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset, Features, Sequence, Value
from datasets import Image as ImageFeature
from PIL import Image

from dataset_builders.scenes import CATEGORIES, generate_scene
from spatialboost.probes import hub_split, rgbd_folder_split, synthetic_split


REDWOOD = Path(__file__).resolve().parents[2] / "shared" / "data" / "rgbd" / "redwood"


def test_synthetic_split_references_match_the_scene():
    split = synthetic_split([3, 4], image_size=(64, 48))
    assert len(split) == 2 and split.class_names[0] == "room" and split.label_names == list(CATEGORIES)
    for index, seed in enumerate([3, 4]):
        scene = generate_scene(seed, image_size=(64, 48), num_views=1)
        view = scene.render(0)
        np.testing.assert_array_equal(split.depths[index], view.depth)
        np.testing.assert_array_equal(np.asarray(split.images[index]), view.image)
        assert (split.masks[index][view.instances == 0] == 0).all()
        areas = {}
        for obj in scene.objects:
            pixels = view.instances == obj.instance_id
            assert (split.masks[index][pixels] == 1 + list(CATEGORIES).index(obj.category)).all()
            areas[obj.category] = areas.get(obj.category, 0) + pixels.sum()
        assert split.label_names[split.labels[index]] == max(areas, key=areas.get)


@pytest.mark.skipif(not REDWOOD.exists(), reason="needs ../shared/data/rgbd/redwood")
def test_rgbd_folder_depth_is_sensor_depth_in_metres():
    split = rgbd_folder_split(REDWOOD)
    assert len(split) == 5 and split.masks is None and split.labels is None
    raw = np.asarray(Image.open(REDWOOD / "depth" / "00000.png"))
    assert raw.dtype == np.uint16
    np.testing.assert_allclose(split.depths[0], raw / 1000.0, rtol=1e-6)
    valid = split.depths[0][split.depths[0] > 0]
    assert 0.3 < np.median(valid) < 5.0  # an indoor scene seen by a PrimeSense sensor
    assert split.images[0].size == split.depths[0].shape[::-1]


def test_rgbd_folder_without_images_is_named(tmp_path):
    (tmp_path / "color").mkdir()
    with pytest.raises(ValueError, match="no colour images"):
        rgbd_folder_split(tmp_path)


def test_hub_split_maps_columns():
    rng = np.random.default_rng(0)
    rows = {
        "rgb": [Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)) for _ in range(3)],
        "depth_mm": [rng.integers(500, 4000, (8, 8)).tolist() for _ in range(3)],
        "annotation": [np.full((8, 8), k).tolist() for k in (0, 1, 5)],  # 0 = "other", as in ADE20K
        "scene": [2, 0, 1],
    }
    features = Features(
        {
            "rgb": ImageFeature(),
            "depth_mm": Sequence(Sequence(Value("int32"))),
            "annotation": Sequence(Sequence(Value("int32"))),
            "scene": Value("int64"),
        }
    )
    dataset = Dataset.from_dict(rows, features=features)
    split = hub_split(
        dataset, "rgb", depth_column="depth_mm", depth_scale=1000.0, mask_column="annotation", mask_offset=-1,
        label_column="scene", num_rows=2,
    )  # fmt: skip
    assert len(split) == 2 and split.labels == [2, 0]
    np.testing.assert_allclose(split.depths[1], np.array(rows["depth_mm"][1]) / 1000.0, rtol=1e-6)
    assert (split.masks[0] == 255).all() and (split.masks[1] == 0).all()  # "other" ignored, class 1 -> 0
    assert hub_split(dataset, "rgb").depths is None
    with pytest.raises(ValueError, match="not in the dataset"):
        hub_split(dataset, "rgb", depth_column="depth")
