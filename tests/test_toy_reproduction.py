"""The toy reproduction's smoke mode: every stage and control runs with the real classes, and the outputs that the
issue names (summary.json keys, report.md, plots) are written. The claim itself is measured by the full run, not
here: one seed never counts as shown."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("toy_reproduction", ROOT / "benchmarks" / "toy_reproduction.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script runs
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_quick_run_writes_summary_report_and_every_control(tmp_path, capsys):
    toy = load_script()
    toy.main(["--quick", "--output-dir", str(tmp_path), "--extra-lr3", "1e-2", "--threads", "1"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in (
        "claim_shown",
        "depth_abs_rel_gain_mean",
        "depth_abs_rel_seed_std",
        "category_knn_change",
        "image_reliance_nats",
        "vlm_left_right_accuracy",
        "controls",
        "checks",
    ):
        assert key in summary
    assert set(summary["controls"]) == {"spatialboost", "oracle", "full_ft", "lora", "spatialboost@0.01"}
    assert summary["claim_shown"] is False  # one seed is never enough
    results = json.loads((tmp_path / "results.json").read_text())
    boosted = results[0]["variants"]["spatialboost"]
    assert len(boosted["alpha_per_layer"]) == summary["settings"]["encoder_layers"]
    assert results[0]["variants"]["lora"]["lora_trainable"] > 0
    report = (tmp_path / "report.md").read_text()
    assert "full_ft" in report and "Claim shown" in report
    assert (tmp_path / "probes.png").stat().st_size > 0 and (tmp_path / "alpha.png").stat().st_size > 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last)["claim_shown"] is False


def test_variants_start_from_the_same_stage2_model_and_leave_it_unchanged():
    """Each stage-3 variant trains a copy: the stage-2 VLM the next variant starts from is untouched."""
    import torch

    toy = load_script()
    scenes = toy.render_scenes(range(20_000, 20_016), toy.PROCESSOR)
    base = toy.make_base(0, 32, 2)
    vlm = toy.make_vlm(toy.SpatialBoostDinov3ViTModel.from_base(base), 0, 32, 1)
    before = {k: v.clone() for k, v in vlm.state_dict().items()}
    args = type("Args", (), {"stage3_steps": 2, "lr3": 1e-2, "lr_ft": 1e-3, "lr_lora": 1e-2})()
    for name in ("spatialboost", "full_ft", "lora"):
        encoder, _facts = toy.stage3_variant(name, vlm, base, toy.Stream(scenes, 0, 4), args, scenes)
        changed = any(
            not torch.equal(encoder.state_dict()[k], v)
            for k, v in vlm.model.vision_tower.state_dict().items()
            if k in encoder.state_dict()
        )
        assert changed, name
    assert all(torch.equal(before[k], v) for k, v in vlm.state_dict().items())
