"""Invariants of the SpatialBoost encoders, on tiny random-weight configurations of every supported family."""

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import HfApi, RepoUrl
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import (
    AutoBackbone,
    AutoImageProcessor,
    AutoModel,
    BertConfig,
    BertModel,
    DINOv3ViTBackbone,
    DINOv3ViTConfig,
    DINOv3ViTModel,
    Siglip2ImageProcessor,
    Siglip2VisionConfig,
    Siglip2VisionModel,
    SiglipConfig,
    SiglipModel,
    SiglipVisionConfig,
    SiglipVisionModel,
)
from transformers.models.dinov3_vit.modeling_dinov3_vit import DINOv3ViTAttention
from transformers.models.siglip.modeling_siglip import SiglipAttention
from transformers.models.siglip2.modeling_siglip2 import Siglip2Attention

from modeling_spatialboost import (
    SpatialBoostDinov3ViTBackbone,
    SpatialBoostDinov3ViTConfig,
    SpatialBoostDinov3ViTModel,
    SpatialBoostSiglip2VisionModel,
    SpatialBoostSiglipVisionModel,
)
from modeling_spatialboost.convert_to_spatialboost import convert_to_spatialboost, main


TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "patch_size": 8}


@dataclass
class Family:
    name: str
    base_class: type
    boost_class: type
    upstream_attention: type
    make_config: object

    def inputs(self, batch_size: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        if self.base_class is Siglip2VisionModel:
            # NaFlex patches of two images of different aspect ratios, so the padding mask matters.
            processor = Siglip2ImageProcessor(patch_size=8, max_num_patches=16)
            images = [
                Image.fromarray(np.asarray(torch.randint(0, 255, (h, w, 3), generator=generator), dtype=np.uint8))
                for h, w in [(40, 64), (64, 24)][:batch_size]
            ]
            return dict(processor(images=images, return_tensors="pt"))
        return {"pixel_values": torch.randn(batch_size, 3, 32, 32, generator=generator)}


FAMILIES = [
    Family(
        "dinov3",
        DINOv3ViTModel,
        SpatialBoostDinov3ViTModel,
        DINOv3ViTAttention,
        # No random RoPE augmentation in training mode, so that train-mode passes are repeatable.
        lambda: DINOv3ViTConfig(**TINY, image_size=32, num_register_tokens=2, pos_embed_rescale=None),
    ),
    Family(
        "siglip",
        SiglipVisionModel,
        SpatialBoostSiglipVisionModel,
        SiglipAttention,
        lambda: SiglipVisionConfig(**TINY, image_size=32),
    ),
    Family(
        "siglip2",
        Siglip2VisionModel,
        SpatialBoostSiglip2VisionModel,
        Siglip2Attention,
        lambda: Siglip2VisionConfig(**TINY, num_patches=16),
    ),
]


def make_base(family: Family, attn_implementation: str = "sdpa", seed: int = 0):
    torch.manual_seed(seed)
    config = family.make_config()
    config._attn_implementation = attn_implementation
    return family.base_class(config).eval()


def perturb_attn_plus(model, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ".attn_plus." in name:
                parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))


@pytest.fixture(params=FAMILIES, ids=lambda family: family.name)
def family(request) -> Family:
    return request.param


# -- the central invariant ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_converted_encoder_equals_base(family, attn_implementation):
    base = make_base(family, attn_implementation)
    boosted = family.boost_class.from_base(base).eval()
    assert boosted.config._attn_implementation == attn_implementation
    inputs = family.inputs()
    with torch.no_grad():
        expected = base(**inputs, output_hidden_states=True)
        actual = boosted(**inputs, output_hidden_states=True)
    torch.testing.assert_close(actual.last_hidden_state, expected.last_hidden_state, atol=1e-5, rtol=0)
    torch.testing.assert_close(actual.pooler_output, expected.pooler_output, atol=1e-5, rtol=0)
    assert len(actual.hidden_states) == len(expected.hidden_states) == base.config.num_hidden_layers + 1
    for got, want in zip(actual.hidden_states, expected.hidden_states, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_from_pretrained_without_a_checkpoint_takes_config_and_state_dict(family, monkeypatch):
    # transformers' `from_pretrained(None, config=..., state_dict=...)`: nothing is read from disk or the Hub.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    boosted = family.boost_class.from_base(make_base(family))
    perturb_attn_plus(boosted)
    loaded = family.boost_class.from_pretrained(None, config=boosted.config, state_dict=boosted.state_dict())
    assert type(loaded) is family.boost_class
    for name, tensor in boosted.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_every_layer_boosted_by_default_and_subset_on_request(family):
    base = make_base(family)
    everywhere = family.boost_class.from_base(base)
    assert sorted(everywhere.dual_attentions) == [0, 1]
    only_last = family.boost_class.from_base(base, boost_layers=[1])
    assert sorted(only_last.dual_attentions) == [1]
    plus_layers = {name.split(".attn_plus.")[0] for name, _ in only_last.named_parameters() if ".attn_plus." in name}
    assert len(plus_layers) == 1 and ".1." in next(iter(plus_layers))
    # The untouched layer keeps the upstream attention class itself.
    first_layer = only_last.encoder_layers[0]
    attention = getattr(first_layer, only_last.boost_family.attention_attr)
    assert type(attention) is family.upstream_attention


def test_upstream_parameter_names_unchanged(family):
    base = make_base(family)
    boosted = family.boost_class.from_base(base)
    boosted_names = set(boosted.state_dict())
    assert set(base.state_dict()) <= boosted_names
    assert all(".attn_plus." in name for name in boosted_names - set(base.state_dict()))


# -- the dual-channel computation --------------------------------------------------------------------------------


def test_fused_pass_equals_two_plain_branches(family):
    """One GEMM + one attention call over 2 × heads equals α ⊙ Attn(x) + (1 − α) ⊙ Attn⁺(x) with upstream modules."""
    boosted = family.boost_class.from_base(make_base(family, "eager")).eval()
    perturb_attn_plus(boosted)
    attention = boosted.dual_attentions[0]
    # A plain upstream attention holding Attn⁺'s weights.
    plus = family.upstream_attention(boosted.config).eval()
    plus.load_state_dict({k: v for k, v in attention.attn_plus.state_dict().items() if k != "mix_logit"})

    hidden_states = torch.randn(2, 20, 32)
    kwargs = {}
    if family.base_class is DINOv3ViTModel:
        # 2 register + 1 CLS prefix tokens, 4 × 4 patches rotated by RoPE.
        hidden_states = torch.randn(2, 19, 32)
        kwargs["position_embeddings"] = boosted.rope_embeddings(torch.zeros(1, 3, 32, 32))
    with torch.no_grad():
        fused, weights = attention(hidden_states, **kwargs)
        base_out, _ = family.upstream_attention.forward(attention, hidden_states, **kwargs)
        plus_out, _ = plus(hidden_states, **kwargs)
    alpha = torch.sigmoid(attention.attn_plus.mix_logit)
    torch.testing.assert_close(fused, alpha * base_out + (1 - alpha) * plus_out, atol=1e-5, rtol=1e-5)
    assert weights.shape[1] == 2 * boosted.config.num_attention_heads  # eager returns both head sets


def test_changed_attn_plus_changes_outputs(family):
    base = make_base(family)
    boosted = family.boost_class.from_base(base).eval()
    perturb_attn_plus(boosted)
    inputs = family.inputs()
    with torch.no_grad():
        assert (boosted(**inputs).last_hidden_state - base(**inputs).last_hidden_state).abs().max() > 1e-2


def test_backward_reaches_attn_plus_and_mix_logit_only(family):
    boosted = family.boost_class.from_base(make_base(family))
    perturb_attn_plus(boosted)  # at conversion dL/da = α(1 − α)(Attn − Attn⁺) = 0, so let the branches differ
    trainable = boosted.freeze_for_spatialboost()
    upstream_attention = family.upstream_attention(boosted.config)
    per_layer = len(list(upstream_attention.parameters())) + 1  # a copy of every projection parameter, plus a
    assert len(trainable) == per_layer * boosted.config.num_hidden_layers
    boosted.train()
    boosted(**family.inputs()).last_hidden_state.pow(2).mean().backward()
    for name, parameter in boosted.named_parameters():
        if ".attn_plus." in name:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        else:
            assert not parameter.requires_grad and parameter.grad is None, name


def test_mean_alpha_reads_sigmoid_of_mix_logit(family):
    boosted = family.boost_class.from_base(make_base(family))
    assert boosted.mean_alpha() == {0: 0.5, 1: 0.5}
    with torch.no_grad():
        boosted.mix_logits()[1].fill_(2.0)
    assert boosted.mean_alpha()[1] == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item())


def test_gradient_checkpointing_gives_the_same_gradients(family):
    boosted = family.boost_class.from_base(make_base(family))
    perturb_attn_plus(boosted)
    boosted.freeze_for_spatialboost()
    boosted.train()
    inputs = family.inputs()

    def gradients():
        boosted.zero_grad()
        boosted(**inputs).last_hidden_state.pow(2).mean().backward()
        return {name: p.grad.clone() for name, p in boosted.named_parameters() if p.requires_grad}

    plain = gradients()
    boosted.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    assert boosted.is_activation_checkpointing
    checkpointed = gradients()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-6, rtol=1e-5)


def test_bf16_base_converts_exactly(family):
    base = make_base(family).to(torch.bfloat16)
    boosted = family.boost_class.from_base(base).eval()
    inputs = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in family.inputs().items()}
    with torch.no_grad():
        assert torch.equal(boosted(**inputs).last_hidden_state, base(**inputs).last_hidden_state)
    # At real sizes (DINOv3 ViT-B, 14 × 14 patches) RoPE frequencies rounded to bf16 by `.to()` change the output, so
    # the boosted encoder must carry the base's rounded buffers, not freshly computed fp32 ones.
    for name, buffer in base.named_buffers():
        assert torch.equal(boosted.get_buffer(name).double(), buffer.double()), name


def test_bf16_forward(family):
    boosted = family.boost_class.from_base(make_base(family)).eval()
    inputs = family.inputs()
    with torch.no_grad():
        reference = boosted(**inputs).last_hidden_state
        boosted.to(torch.bfloat16)
        bf16_inputs = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in inputs.items()}
        output = boosted(**bf16_inputs).last_hidden_state
    assert output.dtype == torch.bfloat16 and torch.isfinite(output).all()
    torch.testing.assert_close(output.float(), reference, atol=0.15, rtol=0.05)


# -- saving, loading, remote code --------------------------------------------------------------------------------


def test_save_load_round_trip_and_hub_files(family, tmp_path):
    boosted = family.boost_class.from_base(make_base(family), boost_layers=[1]).eval()
    perturb_attn_plus(boosted)
    boosted.save_pretrained(tmp_path)
    files = {path.name for path in tmp_path.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "configuration_spatialboost.py",
        "modeling_spatialboost.py",
        "preprocessor_config.json",
        "README.md",
    } <= files
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == f"modeling_spatialboost.{family.boost_class.__name__}"
    assert config["boost_layers"] == [1]
    card = (tmp_path / "README.md").read_text()
    assert "library_name: transformers" in card and "- spatialboost" in card and "license:" in card

    reloaded = AutoModel.from_pretrained(tmp_path).eval()  # no trust_remote_code: the package registered the classes
    assert type(reloaded) is family.boost_class
    inputs = family.inputs()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).last_hidden_state, boosted(**inputs).last_hidden_state)
    assert type(reloaded.image_processor) is type(boosted.image_processor)


REMOTE_CODE_SCRIPT = """
import sys
sys.modules["modeling_spatialboost"] = None  # importing the package now fails, as on a machine without it
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoImageProcessor, AutoModel

folder = sys.argv[1]
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
assert "transformers_modules" in type(model).__module__, type(model).__module__
AutoImageProcessor.from_pretrained(folder)
inputs = load_file(f"{folder}/inputs.safetensors")
with torch.no_grad():
    output = model(**inputs)
save_file({"last_hidden_state": output.last_hidden_state, "pooler_output": output.pooler_output.contiguous()},
          f"{folder}/outputs.safetensors")
"""


def run_without_the_package(script: str, folder, inputs: dict) -> dict[str, torch.Tensor]:
    """Runs `script` on a saved model `folder` in a fresh interpreter; returns the tensors it saved as outputs."""
    save_file(inputs, folder / "inputs.safetensors")
    result = subprocess.run(
        [sys.executable, "-c", script, str(folder)],
        capture_output=True,
        text=True,
        cwd=folder,
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(folder / "hf_home"), "PATH": "", "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    return load_file(folder / "outputs.safetensors")


@pytest.mark.slow
def test_remote_code_round_trip_without_the_package(family, tmp_path):
    boosted = family.boost_class.from_base(make_base(family)).eval()
    perturb_attn_plus(boosted)
    boosted.save_pretrained(tmp_path)
    inputs = family.inputs()
    remote = run_without_the_package(REMOTE_CODE_SCRIPT, tmp_path, inputs)
    with torch.no_grad():
        local = boosted(**inputs)
    torch.testing.assert_close(remote["last_hidden_state"], local.last_hidden_state)
    torch.testing.assert_close(remote["pooler_output"], local.pooler_output)


def test_conversion_from_folder_keeps_base_outputs_and_processor(family, tmp_path):
    base = make_base(family)
    base.save_pretrained(tmp_path / "base")
    processor = family.boost_class.from_base(base).image_processor
    processor.save_pretrained(tmp_path / "base")
    boosted = convert_to_spatialboost(tmp_path / "base", boost_layers=[0]).eval()
    assert type(boosted) is family.boost_class
    assert boosted.config.base_model_name_or_path == str(tmp_path / "base")
    inputs = family.inputs()
    with torch.no_grad():
        torch.testing.assert_close(
            boosted(**inputs).last_hidden_state, base(**inputs).last_hidden_state, atol=1e-5, rtol=0
        )
    assert boosted.image_processor.to_dict() == processor.to_dict()


def test_full_siglip_checkpoint_converts_its_vision_tower(tmp_path):
    torch.manual_seed(0)
    vision = {**TINY, "image_size": 32}
    text = {**TINY, "vocab_size": 64, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
    full = SiglipModel(SiglipConfig(vision_config=vision, text_config=text)).eval()
    full.save_pretrained(tmp_path)
    boosted = SpatialBoostSiglipVisionModel.from_base(tmp_path).eval()
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected, actual = full.vision_model(pixel_values), boosted(pixel_values)
    torch.testing.assert_close(actual.last_hidden_state, expected.last_hidden_state, atol=1e-5, rtol=0)
    torch.testing.assert_close(actual.pooler_output, expected.pooler_output, atol=1e-5, rtol=0)


def test_convert_command_writes_a_complete_folder(tmp_path, capsys):
    make_base(FAMILIES[0]).save_pretrained(tmp_path / "base")
    main([str(tmp_path / "base"), str(tmp_path / "out"), "--layers", "1"])
    assert "dual-channel attention in layers [1]" in capsys.readouterr().out
    reloaded = AutoModel.from_pretrained(tmp_path / "out")
    assert isinstance(reloaded.config, SpatialBoostDinov3ViTConfig) and reloaded.config.boost_layers == [1]
    assert f"base_model: {tmp_path / 'base'}" in (tmp_path / "out" / "README.md").read_text()
    AutoImageProcessor.from_pretrained(tmp_path / "out")


# -- clear errors ------------------------------------------------------------------------------------------------


def test_unsupported_base_type_names_the_supported_ones(tmp_path):
    BertModel(
        BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=32)
    ).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="'bert' checkpoint.*dinov3_vit.*siglip.*siglip2"):
        convert_to_spatialboost(tmp_path)


def test_layer_index_out_of_range_or_empty(family):
    with pytest.raises(ValueError, match=r"boost_layers \[2\] out of range.*2 layers"):
        family.boost_class.from_base(make_base(family), boost_layers=[0, 2])
    with pytest.raises(ValueError, match="boost_layers is empty"):
        family.boost_class.from_base(make_base(family), boost_layers=[])


def test_upstream_config_given_to_the_model_class(family):
    with pytest.raises(ValueError, match="from_base"):
        family.boost_class(family.make_config())


def test_wrong_family_is_rejected_both_ways(tmp_path):
    dinov3, siglip = make_base(FAMILIES[0]), make_base(FAMILIES[1])
    with pytest.raises(ValueError, match="converts checkpoints of model_type dinov3_vit; got model_type 'siglip"):
        SpatialBoostDinov3ViTModel.from_base(siglip)
    with pytest.raises(ValueError, match="model_type siglip_vision_model; got model_type 'dinov3_vit'"):
        SpatialBoostSiglipVisionModel.from_base(dinov3)
    siglip.save_pretrained(tmp_path / "siglip")
    with pytest.raises(ValueError, match="got model_type 'siglip_vision_model'"):
        SpatialBoostDinov3ViTModel.from_base(tmp_path / "siglip")
    with pytest.raises(ValueError, match="got model_type 'siglip_vision_model'"):
        SpatialBoostDinov3ViTModel.from_pretrained(tmp_path / "siglip")


def test_wrong_channel_count_in_pixel_values(family):
    boosted = family.boost_class.from_base(make_base(family))
    inputs = family.inputs()
    pixel_values = inputs["pixel_values"]
    inputs["pixel_values"] = pixel_values[:, :1] if pixel_values.ndim == 4 else pixel_values[..., :64]
    with pytest.raises(ValueError, match="pixel_values must be"):
        boosted(**inputs)


def test_push_to_hub_uploads_the_complete_folder_with_its_card(monkeypatch):
    uploaded = {}

    def create_repo(self, repo_id, private=None, exist_ok=False, **kwargs):
        uploaded["private"] = private
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, repo_id, folder_path, **kwargs):
        uploaded.update(repo_id=repo_id, files={p.name: p.read_bytes() for p in Path(folder_path).iterdir()})
        return "commit"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    boosted = SpatialBoostDinov3ViTModel.from_base(make_base(FAMILIES[0]))
    boosted.config.base_model_name_or_path = "facebook/dinov3-vits16-pretrain-lvd1689m"
    boosted.config.training_datasets = ["org/spatialboost-multiturn"]
    boosted.push_to_hub("org/dinov3-spatialboost", private=True)
    assert uploaded["repo_id"] == "org/dinov3-spatialboost" and uploaded["private"] is True
    assert {"config.json", "model.safetensors", "modeling_spatialboost.py", "preprocessor_config.json"} <= set(
        uploaded["files"]
    )
    card = uploaded["files"]["README.md"].decode()
    assert "base_model: facebook/dinov3-vits16-pretrain-lvd1689m" in card
    assert "- org/spatialboost-multiturn" in card and "license_name: dinov3-license" in card


def test_dinov3_backbone_converts_exactly_and_reads_a_model_folder(tmp_path):
    config = FAMILIES[0].make_config()
    config.out_indices = [1, 2]
    torch.manual_seed(0)
    base = DINOv3ViTBackbone(config).eval()
    backbone = SpatialBoostDinov3ViTBackbone.from_base(base).eval()
    perturb_attn_plus(backbone)
    pixel_values = FAMILIES[0].inputs()["pixel_values"]
    with torch.no_grad():
        assert backbone(pixel_values).feature_maps[0].shape == (2, 32, 4, 4)
        backbone.reset_attn_plus()
        for got, want in zip(backbone(pixel_values).feature_maps, base(pixel_values).feature_maps, strict=True):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    # The model and the backbone share weights: a saved SpatialBoost model loads as a backbone for dense heads.
    model = SpatialBoostDinov3ViTModel.from_base(make_base(FAMILIES[0])).eval()
    perturb_attn_plus(model)
    model.save_pretrained(tmp_path)
    as_backbone = SpatialBoostDinov3ViTBackbone.from_pretrained(tmp_path, out_indices=[2]).eval()
    assert type(AutoBackbone.from_config(as_backbone.config)) is SpatialBoostDinov3ViTBackbone
    with torch.no_grad():
        tokens = model(pixel_values).last_hidden_state[:, 3:]  # CLS + 2 registers stripped
        feature_map = as_backbone(pixel_values).feature_maps[0]
    torch.testing.assert_close(feature_map.flatten(2).transpose(1, 2), tokens)
