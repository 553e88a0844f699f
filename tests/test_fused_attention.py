"""The fused dual-channel attention (`attention_fusion="fused"`) against the two-pass one, on every family."""

import copy
import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModel

from modeling_spatialboost import SpatialBoostDinov3ViTConfig
from tests.test_modeling_spatialboost import FAMILIES, Family, make_base, perturb_attn_plus, run_without_the_package


@pytest.fixture(params=FAMILIES, ids=lambda family: family.name)
def family(request) -> Family:
    return request.param


def boosted_pair(family: Family, attn_implementation: str = "sdpa"):
    """The same boosted encoder twice: fused and two-pass; Attn⁺ and a perturbed so the branches differ."""
    two_pass = family.boost_class.from_base(make_base(family, attn_implementation))
    assert two_pass.config.attention_fusion == "two_pass"  # the default
    perturb_attn_plus(two_pass)  # mix logits too: α is no longer 0.5 everywhere
    fused = copy.deepcopy(two_pass)
    fused.config.attention_fusion = "fused"
    return fused, two_pass


def gradients(model, inputs: dict) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    model(**inputs).last_hidden_state.pow(2).mean().backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_fused_outputs_equal_two_pass(family, attn_implementation):
    fused, two_pass = boosted_pair(family, attn_implementation)
    inputs = family.inputs()
    with torch.no_grad():
        got = fused.eval()(**inputs, output_hidden_states=True, output_attentions=attn_implementation == "eager")
        want = two_pass.eval()(**inputs, output_hidden_states=True, output_attentions=attn_implementation == "eager")
    with torch.no_grad():
        base_output = make_base(family, attn_implementation)(**inputs).last_hidden_state
    assert (got.last_hidden_state - base_output).abs().max() > 1e-2  # Attn⁺ and α matter here
    for a, b in zip(got.hidden_states, want.hidden_states, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.pooler_output, want.pooler_output, atol=1e-5, rtol=1e-5)
    if attn_implementation == "eager":  # weights of both head sets, Attn's first, as two-pass returns them
        for a, b in zip(got.attentions, want.attentions, strict=True):
            assert a.shape[1] == 2 * fused.config.num_attention_heads
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_converted_encoder_equals_base_exactly(family, dtype):
    base = make_base(family).to(dtype)
    fused = family.boost_class.from_base(base).eval()
    fused.config.attention_fusion = "fused"
    inputs = {k: v.to(dtype) if v.is_floating_point() else v for k, v in family.inputs().items()}
    with torch.no_grad():
        assert torch.equal(fused(**inputs).last_hidden_state, base(**inputs).last_hidden_state)


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "checkpointed"])
def test_stage3_gradients_equal_two_pass(family, attn_implementation, checkpointing):
    fused, two_pass = boosted_pair(family, attn_implementation)
    inputs = family.inputs()
    for model in (fused, two_pass):
        model.freeze_for_spatialboost()
        model.train()
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    got, want = gradients(fused, inputs), gradients(two_pass, inputs)
    trainable = {name for name, p in fused.named_parameters() if p.requires_grad}
    assert set(got) == set(want) == trainable  # Attn⁺ and a, nothing frozen
    assert any(name.endswith("mix_logit") for name in got)
    for name in want:
        assert want[name].abs().max() > 0, name
        torch.testing.assert_close(got[name], want[name], atol=1e-6, rtol=1e-4, msg=name)


def test_full_fine_tuning_gradients_equal_two_pass(family):
    """With the base weights trainable too, the fused pass computes their gradients as well."""
    fused, two_pass = boosted_pair(family)
    inputs = family.inputs()
    got, want = gradients(fused.train(), inputs), gradients(two_pass.train(), inputs)
    attention_attr = fused.boost_family.attention_attr
    attention_params = {name for name, _ in fused.named_parameters() if f".{attention_attr}." in name}
    assert set(got) == set(want) and attention_params <= set(got)  # base and Attn⁺ weights alike
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-6, rtol=1e-4, msg=name)


def test_input_gradients_equal_two_pass(family):
    """The gradient that reaches the pixels (through both branches' input gradients) is the two-pass one."""
    if family.name == "siglip2":
        pytest.skip("NaFlex patches go through a linear patch embedding like the other families; one is enough")
    fused, two_pass = boosted_pair(family)
    grads = []
    for model in (fused, two_pass):
        model.freeze_for_spatialboost()
        pixel_values = family.inputs()["pixel_values"].requires_grad_()
        model.train()(pixel_values=pixel_values).last_hidden_state.pow(2).mean().backward()
        grads.append(pixel_values.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-4)


def backward_flops(model, inputs: dict) -> int:
    loss = model(**inputs).last_hidden_state.pow(2).mean()
    with FlopCounterMode(display=False) as counter:
        loss.backward()
    return counter.get_total_flops()


def test_stage3_backward_computes_no_frozen_weight_gradients(family):
    """Stage 3's backward does the matmul work of two-pass autograd (which skips frozen weights), and much less than
    the same fused pass with every weight trainable: no weight gradient is computed for a frozen weight."""
    fused, two_pass = boosted_pair(family)
    inputs = family.inputs()
    full_ft = backward_flops(fused.train(), inputs)
    for model in (fused, two_pass):
        model.freeze_for_spatialboost()
    stage3_fused = backward_flops(fused.train(), inputs)
    stage3_two_pass = backward_flops(two_pass.train(), inputs)
    hidden, layers = fused.config.hidden_size, fused.config.num_hidden_layers
    with torch.no_grad():
        tokens = fused(**inputs).last_hidden_state.shape[:2].numel()
    per_weight = 2 * hidden**2 * tokens  # FLOPs of one H × H weight's gradient GEMM over the batch
    # The one difference: in the first layer nothing before Attn's context needs a gradient, which two-pass autograd
    # sees and the fused pass, whose context holds both branches, does not (one H × H GEMM, first layer only).
    assert stage3_fused - stage3_two_pass == per_weight
    # Full fine-tuning adds at least the four frozen q/k/v/o weight gradients of every layer.
    assert full_ft - stage3_fused >= 4 * layers * per_weight


def test_autocast_gradients_close_to_two_pass():
    """Under bf16 autocast the custom backward gets bf16 gradients against fp32 weights and must cast, as autograd
    does; its gradients stay close to the two-pass ones."""
    family = FAMILIES[0]
    fused, two_pass = boosted_pair(family)
    grads = []
    for model in (fused, two_pass):
        model.freeze_for_spatialboost()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model.train()(**family.inputs()).last_hidden_state.float().pow(2).mean()
        loss.backward()
        grads.append({name: p.grad for name, p in model.named_parameters() if p.requires_grad})
    for name in grads[1]:
        assert grads[0][name].dtype == torch.float32, name
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=2e-3, rtol=0.1, msg=name)


def test_attention_fusion_is_validated_and_saved(tmp_path):
    with pytest.raises(ValueError, match="attention_fusion must be one of 'fused', 'two_pass'"):
        SpatialBoostDinov3ViTConfig(attention_fusion="single_pass")
    family = FAMILIES[0]
    fused, _ = boosted_pair(family)
    fused.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["attention_fusion"] == "fused"
    assert AutoModel.from_pretrained(tmp_path).config.attention_fusion == "fused"
    # A folder saved before the field existed loads with the default.
    config = json.loads((tmp_path / "config.json").read_text())
    del config["attention_fusion"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert AutoModel.from_pretrained(tmp_path).config.attention_fusion == "two_pass"


REMOTE_CODE_SCRIPT = """
import sys
sys.modules["modeling_spatialboost"] = None  # importing the package now fails, as on a machine without it
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel

folder = sys.argv[1]
model = AutoModel.from_pretrained(folder, trust_remote_code=True)
assert model.config.attention_fusion == "fused"
assert "transformers_modules" in type(model).__module__, type(model).__module__
inputs = load_file(f"{folder}/inputs.safetensors")
model.freeze_for_spatialboost()
output = model.train()(**inputs).last_hidden_state
output.pow(2).mean().backward()
save_file({"last_hidden_state": output.detach().contiguous(),
           "mix_grad": model.mix_logits()[0].grad.contiguous()}, f"{folder}/outputs.safetensors")
"""


@pytest.mark.slow
def test_remote_code_carries_the_fused_module(family, tmp_path):
    fused, _ = boosted_pair(family)
    fused.save_pretrained(tmp_path)
    assert (tmp_path / "fused_attention.py").is_file()  # copied as a relative import of modeling_spatialboost.py
    inputs = family.inputs()
    remote = run_without_the_package(REMOTE_CODE_SCRIPT, tmp_path, inputs)
    fused.freeze_for_spatialboost()
    output = fused.train()(**inputs).last_hidden_state
    output.pow(2).mean().backward()
    torch.testing.assert_close(remote["last_hidden_state"], output.detach())
    torch.testing.assert_close(remote["mix_grad"], fused.mix_logits()[0].grad)
