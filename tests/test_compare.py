"""The comparison command: same splits for every encoder, exact for a freshly converted encoder, a full report."""

from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import DINOv3ViTImageProcessor

from modeling_spatialboost import SpatialBoostDinov3ViTModel
from spatialboost.compare import EncoderResult, compare, main, markdown_table, write_report
from spatialboost.probes import synthetic_split
from spatialboost.quickstart import spread_check
from spatialboost.tiny import tiny_encoder


REDWOOD = Path(__file__).resolve().parents[2] / "shared" / "data" / "rgbd" / "redwood"


@pytest.fixture(scope="module")
def encoder_folders(tmp_path_factory):
    """A tiny base checkpoint (random weights), its exact conversion, and a boosted copy with Attn⁺ perturbed."""
    root = tmp_path_factory.mktemp("encoders")
    torch.manual_seed(0)
    base = tiny_encoder(image_size=64)
    base.save_pretrained(root / "base")
    DINOv3ViTImageProcessor(size={"height": 64, "width": 64}).save_pretrained(root / "base")
    converted = SpatialBoostDinov3ViTModel.from_pretrained(root / "base")  # loads the base checkpoint as is
    converted.save_pretrained(root / "converted")
    with torch.no_grad():
        for name, parameter in converted.named_parameters():
            if ".attn_plus." in name:
                parameter.add_(0.5 * torch.randn_like(parameter))
    converted.save_pretrained(root / "perturbed")
    return {name: str(root / name) for name in ("base", "converted", "perturbed")}


@pytest.fixture(scope="module")
def splits():
    return synthetic_split(range(1000, 1012), (64, 48)), synthetic_split(range(2000, 2004), (64, 48))


def test_converted_encoder_probes_exactly_as_its_base(encoder_folders, splits, tmp_path):
    results = compare(encoder_folders, *splits)
    metrics = {r.name: r.metrics for r in results}
    assert set(metrics["base"]) == {
        "rmse", "abs_rel", "delta1", "delta2", "delta3", "mean_iou", "knn_accuracy", "linear_accuracy"
    }  # fmt: skip
    assert metrics["converted"] == metrics["base"]  # the conversion invariant, seen through the probes
    assert metrics["perturbed"]["rmse"] != metrics["base"]["rmse"]  # so the equality above can fail
    assert results[0].mean_alpha == {} and results[1].mean_alpha == {0: 0.5, 1: 0.5}

    report = write_report(results, splits[1], tmp_path)
    text = report.read_text()
    assert markdown_table(results) in text and "| converted |" in text
    for png in ("metrics.png", "depth_examples.png", "alpha.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"({png})" in text
    assert results[0].depth_predictions[0].shape == splits[1].depths[0].shape


@pytest.mark.skipif(not REDWOOD.exists(), reason="needs ../shared/data/rgbd/redwood")
def test_command_on_an_rgbd_folder(encoder_folders, tmp_path, capsys):
    main([
        "--encoder", f"base={encoder_folders['base']}", "--encoder", f"boosted={encoder_folders['perturbed']}",
        "--data", "rgbd", "--rgbd-dir", str(REDWOOD), "--output-dir", str(tmp_path),
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert "4 images to fit, 1 to score" in out and "| base |" in out and "mIoU" not in out  # depth only
    assert (tmp_path / "report.md").exists() and (tmp_path / "alpha.png").exists()


def test_spread_check_by_hand():
    def results(base, boosted):
        rows = [EncoderResult(f"base s{i}", "", {"abs_rel": v}) for i, v in enumerate(base)]
        return rows + [EncoderResult(f"boosted s{i}", "", {"abs_rel": v}) for i, v in enumerate(boosted)]

    holds, line = spread_check(results([0.30, 0.31, 0.32], [0.20, 0.21, 0.22]), [0, 1, 2], "abs_rel")
    assert holds and "Improvement +0.1000 against a seed spread of 0.0200" in line
    holds, line = spread_check(results([0.30, 0.31, 0.40], [0.28, 0.29, 0.38]), [0, 1, 2], "abs_rel")
    assert not holds and "NOT shown" in line and "seed 2: 0.4000 → 0.3800" in line
    assert np.isclose(float(line.split("Improvement ")[1].split()[0]), 0.02)


def test_command_on_a_dataset_by_column_mapping(encoder_folders, tmp_path, capsys, monkeypatch):
    """Segmentation and labels only (no depth), as for ADE20K; the classes are those the masks hold."""
    scenes = synthetic_split(range(3000, 3010), (64, 48))
    masks = [np.where(m == 0, 255, m + 1).tolist() for m in scenes.masks]  # room ignored, ids shifted
    dataset = Dataset.from_dict({"image": scenes.images, "annotation": masks, "scene": scenes.labels})
    monkeypatch.setattr("spatialboost.probes.load_dataset", lambda *args, **kwargs: dataset)
    main([
        "--encoder", f"base={encoder_folders['base']}", "--data", "hub", "--dataset-name", "org/ade-like",
        "--mask-column", "annotation", "--mask-offset", "-1", "--label-column", "scene", "--output-dir", str(tmp_path),
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert "7 images to fit, 3 to score" in out and "mIoU" in out and "kNN" in out and "AbsRel" not in out
    assert (tmp_path / "metrics.png").exists() and not (tmp_path / "depth_examples.png").exists()
