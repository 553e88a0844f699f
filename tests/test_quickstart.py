"""The README's main job runs end to end (reduced settings) and its invariants hold."""

import pytest
import torch

from spatialboost.compare import load_encoder
from spatialboost.quickstart import main


@pytest.mark.slow
def test_quickstart_end_to_end(tmp_path, capsys):
    main([
        "--output-dir", str(tmp_path), "--steps", "2", "--seeds", "0", "--num-samples", "12",
        "--stage-steps", "2", "1", "3", "--pretrain-steps", "5", "--pretrain-scenes", "16",
        "--probe-train", "12", "--probe-test", "4", "--image-size", "64",
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert "All invariants held" in out
    for family in ("dinov3_vit", "siglip (FixRes)", "siglip2 (NaFlex)"):
        assert f"| {family} | 0.0e+00 |" in out  # conversion exact
    assert (tmp_path / "dinov3_vit-spatialboost" / "README.md").exists()

    # Data was built, the three stages ran, and the three encoders of the seed were probed on the same scenes.
    assert list((tmp_path / "multiturn").rglob("*.parquet"))
    for name in ("random init s0", "base s0", "boosted s0"):
        assert f"| {name} |" in out
    assert "Claim check" in out and ("**shown**" in out or "**NOT shown**" in out)  # reported, not asserted
    boosted = load_encoder(str(tmp_path / "seed0" / "encoder-boosted"))
    assert all(alpha != 0.5 for alpha in boosted.mean_alpha().values())  # stage 3 trained a
    # An intermediate checkpoint (a stage's VLM folder) is compared through its vision tower: the same weights.
    from_vlm = load_encoder(str(tmp_path / "seed0" / "stage3")).state_dict()
    assert from_vlm.keys() == boosted.state_dict().keys()
    assert all(torch.equal(from_vlm[name], value) for name, value in boosted.state_dict().items())
    report = (tmp_path / "report" / "report.md").read_text()
    assert "Claim check" in report and "![alpha](alpha.png)" in report
    assert (tmp_path / "report" / "depth_examples.png").exists()
