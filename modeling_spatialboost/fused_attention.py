"""The fused pass of SpatialBoost's dual-channel attention: `Attn` and `Attn⁺` as one attention with twice the heads.

SpatialBoost (Jeon et al., "SpatialBoost: Enhancing Visual Representation through Language-Guided Reasoning",
https://arxiv.org/abs/2603.22057) mixes two attention branches per hidden channel,

    out(x) = α ⊙ Attn(x) + (1 − α) ⊙ Attn⁺(x),    α = sigmoid(a).

The fused pass computes the same thing in three steps, the branches running as extra heads:

    x ─► [W_q; W_q⁺; W_k; W_k⁺; W_v; W_v⁺] x        one GEMM          (DualProjection)
      ─► RoPE once on the stacked queries and keys   (DINOv3 only)
      ─► one attention call over 2 × heads heads     (Attn's heads first, then Attn⁺'s)
      ─► α ⊙ (W_o c + b_o) + (1 − α) ⊙ (W_o⁺ c⁺ + b_o⁺)                (DualOutputMix)

The two custom autograd functions exist for their backward: autograd on a concatenated weight would compute the
weight gradient of all of it, the frozen half included. Here every weight gradient is computed only when that weight
requires one (`Attn⁺` and `a` in stage 3; every weight under full fine-tuning), and the input gradients of both
branches come from one GEMM each: `grad_x = grad_qkv @ [W_q; W_q⁺; ...]` and
`grad_[c, c⁺] = grad_out @ [diag(α) W_o, diag(1 − α) W_o⁺]`, where the α mix is folded into the output weights.

The forward keeps the two output GEMMs (then one `addcmul`) instead of folding α into one: the backward needs
`Attn(x) − Attn⁺(x)` for the gradient of `a`, which a folded forward never forms (getting it back costs one more
GEMM), and with two GEMMs a freshly converted encoder (`Attn⁺ == Attn`) computes exactly what its base computed.

This file travels to the Hub as remote code with `modeling_spatialboost.py`: it imports only torch and transformers.
"""

import torch
import torch.nn.functional as F
from torch import nn


class DualProjection(torch.autograd.Function):
    """`F.linear(x, cat(weights), cat(biases))` whose backward computes only the gradients that are needed.

    Inputs after `hidden_states` are (weight, bias) pairs in output order; a bias may be `None`.
    """

    @staticmethod
    def forward(ctx, hidden_states: torch.Tensor, *weights_and_biases: torch.Tensor | None) -> torch.Tensor:
        weights, biases = weights_and_biases[0::2], weights_and_biases[1::2]
        weight = torch.cat(weights)
        bias = None
        if any(b is not None for b in biases):
            bias = torch.cat(
                [weight.new_zeros(w.shape[0]) if b is None else b for w, b in zip(weights, biases, strict=True)]
            )
        ctx.save_for_backward(hidden_states, weight)
        ctx.rows = [w.shape[0] for w in weights]
        return F.linear(hidden_states, weight, bias)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        hidden_states, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grads: list[torch.Tensor | None] = [None] * len(needs)
        if needs[0]:
            grads[0] = (grad_output @ weight.to(grad_output.dtype)).to(hidden_states.dtype)
        grad_2d = grad_output.reshape(-1, grad_output.shape[-1])  # (batch × tokens, rows of all weights)
        inputs_2d = hidden_states.reshape(-1, hidden_states.shape[-1]).to(grad_output.dtype)
        start = 0
        for index, rows in enumerate(ctx.rows):
            grad_rows = grad_2d[:, start : start + rows]  # a strided view: the GEMM reads it in place
            start += rows
            if needs[1 + 2 * index]:
                grads[1 + 2 * index] = (grad_rows.t() @ inputs_2d).to(weight.dtype)
            if needs[2 + 2 * index]:
                grads[2 + 2 * index] = grad_rows.sum(0).to(weight.dtype)
        return tuple(grads)


class DualOutputMix(torch.autograd.Function):
    """`α ⊙ (c W_oᵀ + b_o) + (1 − α) ⊙ (c⁺ W_o⁺ᵀ + b_o⁺)` with `[c, c⁺]` = `context` split along its last dim.

    The backward's input gradient is one GEMM with the α mix folded into the weights; weight gradients are computed
    only for the weights that require them.
    """

    @staticmethod
    def forward(
        ctx,
        context: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        weight_plus: torch.Tensor,
        bias_plus: torch.Tensor | None,
        mix_logit: torch.Tensor,
    ) -> torch.Tensor:
        base_context, plus_context = context.split(weight.shape[1], dim=-1)
        base = F.linear(base_context, weight, bias)
        plus = F.linear(plus_context, weight_plus, bias_plus)
        alpha = torch.sigmoid(mix_logit).to(plus.dtype)
        # α ⊙ Attn + (1 − α) ⊙ Attn⁺ == Attn⁺ + α ⊙ (Attn − Attn⁺): exact when the branches agree.
        difference = base - plus
        ctx.save_for_backward(context, weight, weight_plus, mix_logit, difference if ctx.needs_input_grad[5] else None)
        ctx.has_bias = (bias is not None, bias_plus is not None)
        return torch.addcmul(plus, difference, alpha)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        context, weight, weight_plus, mix_logit, difference = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grads: list[torch.Tensor | None] = [None] * 6
        dtype = grad_output.dtype
        alpha = torch.sigmoid(mix_logit.float())
        if needs[0]:
            # grad_[c, c⁺] = grad_out @ [diag(α) W_o, diag(1 − α) W_o⁺]: both branches' input gradients, one GEMM.
            folded = torch.cat([alpha[:, None] * weight.float(), (1 - alpha)[:, None] * weight_plus.float()], dim=1)
            grads[0] = (grad_output @ folded.to(dtype)).to(context.dtype)
        grad_2d = grad_output.reshape(-1, grad_output.shape[-1])  # (batch × tokens, hidden)
        base_context, plus_context = context.reshape(-1, context.shape[-1]).to(dtype).split(weight.shape[1], dim=-1)
        # The per-channel factors α and 1 − α scale the rows of each weight gradient after its GEMM.
        for index, (branch_context, scale) in enumerate([(base_context, alpha), (plus_context, 1 - alpha)]):
            weight_index, bias_index = 1 + 2 * index, 2 + 2 * index
            if needs[weight_index]:
                grads[weight_index] = ((grad_2d.t() @ branch_context).float() * scale[:, None]).to(weight.dtype)
            if needs[bias_index] and ctx.has_bias[index]:
                grads[bias_index] = (grad_2d.float().sum(0) * scale).to(weight.dtype)
        if needs[5]:
            # d out / d a = α (1 − α) (Attn − Attn⁺), per channel.
            grad_alpha = (grad_2d.float() * difference.reshape(grad_2d.shape).float()).sum(0)
            grads[5] = (grad_alpha * alpha * (1 - alpha)).to(mix_logit.dtype)
        return tuple(grads)


def fused_dual_attention(
    attention: nn.Module,
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None,
    position_embeddings: tuple[torch.Tensor, torch.Tensor] | None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One pass of a dual-channel attention module (`DualChannelAttentionMixin`) over both branches.

    Returns the mixed output (batch, tokens, hidden) and, from eager attention, the weights of both head sets
    (batch, 2 × heads, queries, keys), `Attn`'s heads first, as the two-pass forward returns them.
    """
    plus = attention.attn_plus
    q_name, k_name, v_name, o_name = attention.projection_names
    batch_size, num_tokens, _ = hidden_states.shape
    # Rows ordered [q, q⁺, k, k⁺, v, v⁺]: one view splits them into 2 × heads heads without a copy.
    linears = [getattr(module, name) for name in (q_name, k_name, v_name) for module in (attention, plus)]
    qkv = DualProjection.apply(hidden_states, *[t for linear in linears for t in (linear.weight, linear.bias)])
    # (batch, tokens, 6 × hidden) -> (3, batch, 2 × heads, tokens, head_dim)
    qkv = qkv.view(batch_size, num_tokens, 3, 2 * attention.num_heads, attention.head_dim).permute(2, 0, 3, 1, 4)
    queries_and_keys = attention.rotate_stacked_queries_and_keys(qkv[:2], position_embeddings)
    queries, keys = queries_and_keys.unbind(0)
    # context: (batch, tokens, 2 × heads, head_dim)
    context, weights = attention.attention_core(queries, keys, qkv[2], attention_mask, **kwargs)
    base_out, plus_out = getattr(attention, o_name), getattr(plus, o_name)
    output = DualOutputMix.apply(
        context.reshape(batch_size, num_tokens, -1),  # (batch, tokens, [hidden of Attn, hidden of Attn⁺])
        base_out.weight,
        base_out.bias,
        plus_out.weight,
        plus_out.bias,
        plus.mix_logit,
    )
    return output, weights
