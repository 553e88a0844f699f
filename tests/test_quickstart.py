"""The README's main job runs end to end and its invariants hold."""

import pytest

from spatialboost.quickstart import main


@pytest.mark.slow
def test_quickstart_holds_every_invariant(tmp_path, capsys):
    main(["--output-dir", str(tmp_path), "--steps", "2"])
    out = capsys.readouterr().out
    assert "All invariants held" in out
    for family in ("dinov3_vit", "siglip (FixRes)", "siglip2 (NaFlex)"):
        assert f"| {family} | 0.0e+00 |" in out  # conversion exact
    assert (tmp_path / "dinov3_vit-spatialboost" / "README.md").exists()
