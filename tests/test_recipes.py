"""The three recipes end to end on the tiny offline set, driven by their YAML configs as a user runs them."""

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from accelerate.commands.config.config_args import load_config_from_file
from transformers import AutoModel
from trl import TrlParser

from spatialboost.tiny import write_tiny_setup
from spatialboost.vlm import load_spatialboost_vlm


RECIPES = Path(__file__).resolve().parent.parent / "recipes"
RELOAD_WITHOUT_PACKAGE = """
import sys
sys.modules["modeling_spatialboost"] = None  # as on a machine where SpatialBoost is not installed
sys.modules["spatialboost"] = None
import torch
import yaml
from accelerate.commands.config.config_args import load_config_from_file
from transformers import AutoModel
model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
with torch.no_grad():
    print(model(pixel_values=torch.load(sys.argv[2])).last_hidden_state.sum().item())
"""


def run_recipe(stage: int, *overrides: str):
    spec = importlib.util.spec_from_file_location(f"stage{stage}", RECIPES / f"stage{stage}.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    config = str(RECIPES / "configs" / "tiny" / f"stage{stage}.yaml")
    return recipe.main(*TrlParser(recipe.ARGUMENTS).parse_args_and_config(["--config", config, *overrides]))


@pytest.mark.slow
def test_three_stages_run_from_their_tiny_configs_and_publish_the_encoder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the tiny configs use paths relative to where they are run
    write_tiny_setup("tiny-spatialboost", num_samples=12, image_size=32)
    fast = ["--max_steps", "2", "--save_steps", "1", "--use_cpu", "true", "--disable_tqdm", "true"]
    for stage in (1, 2, 3):
        run_recipe(stage, *fast)
        assert (tmp_path / f"tiny-spatialboost/stage{stage}/checkpoint-2").is_dir()

    stage2, _ = load_spatialboost_vlm("tiny-spatialboost/stage2")
    stage3, _ = load_spatialboost_vlm("tiny-spatialboost/stage3")
    assert [item["stage"] for item in stage3.config.training_history] == [1, 2, 3]
    changed = {
        name
        for (name, before), (_, after) in zip(stage2.named_parameters(), stage3.named_parameters(), strict=True)
        if not torch.equal(before, after)
    }
    assert changed and all(".attn_plus." in name for name in changed)  # stage 3 moved only Attn⁺ and a

    folder = tmp_path / "tiny-spatialboost/encoder-spatialboost"
    encoder = AutoModel.from_pretrained(folder).eval()
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = stage3.model.vision_tower.eval()(pixel_values).last_hidden_state
        torch.testing.assert_close(encoder(pixel_values).last_hidden_state, expected, rtol=0, atol=0)
    assert "| 3 spatial injection | tiny-spatialboost/data | Attn⁺ and a |" in (folder / "README.md").read_text()

    torch.save(pixel_values, tmp_path / "pixels.pt")
    result = subprocess.run(
        [sys.executable, "-c", RELOAD_WITHOUT_PACKAGE, str(folder), str(tmp_path / "pixels.pt")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.strip().splitlines()[-1]) == pytest.approx(expected.sum().item(), rel=1e-5)


@pytest.mark.parametrize("config", sorted((RECIPES / "configs").glob("*/stage*.yaml")), ids=lambda path: str(path))
def test_every_config_names_its_hardware_and_only_known_options(config):
    text = config.read_text()
    assert text.startswith("# Hardware: ")
    stage = int(config.stem[-1])
    spec = importlib.util.spec_from_file_location(f"stage{stage}", RECIPES / f"stage{stage}.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    known = {field.name for cls in recipe.ARGUMENTS for field in dataclasses.fields(cls)}
    assert set(yaml.safe_load(text)) <= known


@pytest.mark.parametrize("config", sorted((RECIPES / "accelerate_configs").glob("*.yaml")), ids=lambda path: path.name)
def test_accelerate_configs_load(config):
    loaded = load_config_from_file(str(config))
    assert loaded.distributed_type in {"NO", "MULTI_GPU", "FSDP", "DEEPSPEED"}
