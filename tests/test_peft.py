"""LoRA in the recipes, in TRL's convention (`ModelConfig`: `--use_peft`, `--lora_r`, `--lora_target_modules`, ...):
stage 2's LM only, never the encoder, and the merged VLM reloads with the outputs of the trained adapter.

Tiny random-weight models built in code (spatialboost.tiny); a few real stage-2 steps on CPU.
"""

import importlib.util
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer
from trl import ModelConfig, TrlParser
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from spatialboost.tiny import build_tokenizer, dataset_texts, tiny_dataset, tiny_vlm
from spatialboost.training import lora_config_for_stage
from spatialboost.vlm import load_spatialboost_vlm


RECIPES = Path(__file__).resolve().parent.parent / "recipes"
LM_LINEAR_LAYERS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


@pytest.fixture(scope="module")
def dataset():
    return tiny_dataset(8, views=(1, 2), image_size=32)


@pytest.fixture(scope="module")
def tokenizer(dataset):
    return build_tokenizer(dataset_texts(dataset))


def lora_modules(model) -> set[str]:
    """Names of the modules peft wrapped with a LoRA layer."""
    return {name for name, module in model.named_modules() if isinstance(module, LoraLayer)}


def test_the_obvious_module_list_would_wrap_the_encoder_too(tokenizer):
    """Why the targets are scoped: by name alone, LoRA wraps DINOv3's base and Attn⁺ projections as well."""
    model, _ = tiny_vlm(tokenizer)
    wrapped = lora_modules(get_peft_model(model, LoraConfig(target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])))
    assert any(".vision_tower." in name and ".attn_plus." in name for name in wrapped)
    assert any(".vision_tower." in name and ".attn_plus." not in name for name in wrapped)


@pytest.mark.parametrize(
    ("target_modules", "expected"),
    [(None, LM_LINEAR_LAYERS), (["all-linear"], LM_LINEAR_LAYERS), (["q_proj", "v_proj"], {"q_proj", "v_proj"})],
)
def test_lora_targets_only_lm_linear_layers(tokenizer, target_modules, expected):
    model, _ = tiny_vlm(tokenizer)
    model_args = ModelConfig(use_peft=True, lora_r=4, lora_target_modules=target_modules)
    peft_model = get_peft_model(model, lora_config_for_stage(model_args, model, stage=2))
    wrapped = lora_modules(peft_model)
    layers = model.config.text_config.num_hidden_layers
    assert len(wrapped) == layers * len(expected)
    assert all(".model.language_model.layers." in name for name in wrapped)
    assert {name.rsplit(".", 1)[-1] for name in wrapped} == expected
    trainable = {name for name, parameter in peft_model.named_parameters() if parameter.requires_grad}
    assert all(
        (".model.language_model." in name and ".lora_" in name) or ".multi_modal_projector.modules_to_save." in name
        for name in trainable
    )
    assert any(".multi_modal_projector.modules_to_save." in name for name in trainable)  # stage 2 trains it in full


@pytest.mark.parametrize(
    ("stage", "options", "message"),
    [
        (1, {"use_peft": True}, "stage 2's LM only: stage 1 trains the projector alone"),
        (3, {"use_peft": True}, "stage 2's LM only: stage 3 trains Attn⁺ and a alone"),
        (
            2,
            {"use_peft": True, "lora_target_modules": ["q_proj", "qkv"]},
            r"\['qkv'\] are not linear layers of the LM",
        ),
        (2, {"use_peft": True, "lora_modules_to_save": ["attn_plus"]}, r"\['attn_plus'\] name encoder modules"),
        (2, {"use_peft": True, "lora_target_parameters": ["mlp.experts"]}, "lora_target_parameters"),
        (2, {"load_in_4bit": True}, "quantize the encoder"),
    ],
)
def test_lora_options_that_would_reach_the_encoder_or_another_stage_are_rejected(tokenizer, stage, options, message):
    model, _ = tiny_vlm(tokenizer)
    with pytest.raises(ValueError, match=message):
        lora_config_for_stage(ModelConfig(**options), model, stage=stage)


def test_without_use_peft_there_is_no_adapter_in_any_stage(tokenizer):
    model, _ = tiny_vlm(tokenizer)
    assert all(lora_config_for_stage(ModelConfig(), model, stage=stage) is None for stage in (1, 2, 3))


def run_stage2(*arguments: str):
    spec = importlib.util.spec_from_file_location("stage2", RECIPES / "stage2.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    config = str(RECIPES / "configs" / "tiny" / "stage2.yaml")
    return recipe.main(*TrlParser(recipe.ARGUMENTS).parse_args_and_config(["--config", config, *arguments]))


@pytest.mark.slow
def test_stage2_lora_trains_only_the_lm_adapter_and_the_merged_vlm_reloads(tmp_path, dataset, tokenizer):
    model, processor = tiny_vlm(tokenizer)
    model.save_pretrained(tmp_path / "stage1")
    processor.save_pretrained(tmp_path / "stage1")
    dataset.to_parquet(str(tmp_path / "data" / "train-00000-of-00001.parquet"))
    initial = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}

    trainer = run_stage2(
        *("--model_name_or_path", str(tmp_path / "stage1"), "--dataset_names", str(tmp_path / "data")),
        *("--output_dir", str(tmp_path / "stage2"), "--max_steps", "3", "--save_strategy", "no"),
        *("--use_cpu", "true", "--disable_tqdm", "true", "--report_to", "none"),
        *("--use_peft", "true", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0"),
    )
    peft_model = trainer.model.eval()
    trained = {name for name, parameter in peft_model.named_parameters() if parameter.requires_grad}
    assert trained and all(
        (".model.language_model." in name and ".lora_" in name) or ".multi_modal_projector.modules_to_save." in name
        for name in trained
    )
    # The projector and the adapter moved (B starts at zero); every frozen tensor (encoder, Attn⁺, a, the LM's own
    # weights) is bit-identical.
    for name, parameter in peft_model.named_parameters():
        original = name.removeprefix("base_model.model.").replace(".base_layer.", ".")
        original = original.replace(".modules_to_save.default.", ".").replace(".original_module.", ".")
        if ".lora_B." in name:
            assert parameter.abs().sum() > 0, name
        elif name in trained and ".lora_A." not in name:
            assert not torch.equal(parameter, initial[original]), name
        elif name not in trained:
            assert torch.equal(parameter, initial[original]), name

    assert (tmp_path / "stage2" / "adapter" / "adapter_config.json").is_file()
    assert not (tmp_path / "stage2" / "adapter_config.json").exists()  # the VLM folder is a plain VLM
    merged, _ = load_spatialboost_vlm(str(tmp_path / "stage2"))
    assert not lora_modules(merged)
    history = merged.config.training_history[-1]
    assert history["stage"] == 2
    assert history["trained"] == ["model.language_model (LoRA, merged)", "model.multi_modal_projector"]
    for name, parameter in merged.model.vision_tower.named_parameters():
        assert torch.equal(parameter, initial[f"model.vision_tower.{name}"]), name
    assert not torch.equal(
        merged.model.language_model.layers[0].self_attn.q_proj.weight,
        initial["model.language_model.layers.0.self_attn.q_proj.weight"],
    )

    batch = DataCollatorForVisionLanguageModeling(processor)(
        [{"images": row["images"], "messages": row["messages"]} for row in dataset.select(range(2))]
    )
    with torch.no_grad():
        # W x + B (A x) against (W + B A) x: equal up to float rounding.
        torch.testing.assert_close(merged.eval()(**batch).logits, peft_model(**batch).logits, rtol=1e-5, atol=1e-5)
