"""Cost of SpatialBoost's dual-channel attention against the base encoder, measured side by side in one run.

For DINOv3 (or SigLIP, `--family siglip`) ViT-S/16 and ViT-B/16 shapes (random weights, 224², batch 8, fp32) it prints:
- forward time of the boosted encoder (two plain branches, as shipped) and of a fused variant (one GEMM for both
  q/k/v sets, one SDPA call over both head sets), over the base encoder's;
- a stage-3 training step (forward + backward + AdamW, only Attn⁺ and a trainable) over a full fine-tuning step of
  the base encoder;
- trainable parameters and AdamW optimizer-state bytes of both.

    python benchmarks/bench_encoder.py                 # CPU, the figures in README.md
    python benchmarks/bench_encoder.py --device cuda --dtype bfloat16
"""

import argparse
import copy
import time

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DINOv3ViTConfig, DINOv3ViTModel, SiglipVisionConfig, SiglipVisionModel

from modeling_spatialboost import SpatialBoostDinov3ViTModel, SpatialBoostSiglipVisionModel


SHAPES = {
    "ViT-S/16": {"hidden_size": 384, "intermediate_size": 1536, "num_attention_heads": 6, "num_hidden_layers": 12},
    "ViT-B/16": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12},
    "ViT-L/16": {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24},
}


class FusedDualAttention(nn.Module):
    """The fused alternative: one GEMM for both q/k/v sets and one attention call over 2 × heads heads."""

    def __init__(self, dual):
        super().__init__()
        self.dual = dual

    def forward(self, hidden_states, attention_mask=None, position_embeddings=None, **kwargs):
        dual, plus = self.dual, self.dual.attn_plus
        batch_size, num_tokens, _ = hidden_states.shape
        # Rows ordered [q, q⁺, k, k⁺, v, v⁺] so that one view splits them into 2 × heads heads without a copy.
        linears = [getattr(module, name) for name in dual.projection_names[:3] for module in (dual, plus)]
        weight = torch.cat([linear.weight for linear in linears])
        bias = torch.cat(
            [linear.bias if linear.bias is not None else weight.new_zeros(linear.out_features) for linear in linears]
        )
        qkv = F.linear(hidden_states, weight, bias)
        # (batch, tokens, 3, 2 * heads, head_dim) -> (3, batch, 2 * heads, tokens, head_dim)
        qkv = qkv.view(batch_size, num_tokens, 3, 2 * dual.num_heads, dual.head_dim).permute(2, 0, 3, 1, 4)
        queries, keys, values = qkv.unbind(0)
        queries, keys = dual.rotate_queries_and_keys(queries, keys, position_embeddings)
        attn_output = F.scaled_dot_product_attention(queries, keys, values, scale=dual.head_dim**-0.5)
        # (batch, 2 * heads, tokens, head_dim) -> two (batch, tokens, hidden)
        base_heads, plus_heads = attn_output.transpose(1, 2).chunk(2, dim=2)
        out_name = dual.projection_names[3]
        base = getattr(dual, out_name)(base_heads.reshape(batch_size, num_tokens, -1))
        plus_output = getattr(plus, out_name)(plus_heads.reshape(batch_size, num_tokens, -1))
        return torch.lerp(plus_output, base, torch.sigmoid(plus.mix_logit)), None


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def interleaved_minima(fns: dict, repeats: int) -> dict[str, float]:
    """Runs each candidate once per round, round after round, so that drift in machine speed hits all alike, and
    keeps each one's fastest round: on a shared CPU the minimum is the time least inflated by other work."""
    for fn in fns.values():  # warm-up
        fn()
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name] += timed(fn, 1)
    return {name: min(values) for name, values in samples.items()}


def train_step(model, optimizer, pixel_values):
    def step():
        optimizer.zero_grad(set_to_none=True)
        model(pixel_values=pixel_values).last_hidden_state.float().pow(2).mean().backward()
        optimizer.step()

    return step


def adamw_state_bytes(parameters) -> int:
    return sum(2 * p.numel() * p.element_size() for p in parameters)  # exp_avg and exp_avg_sq


def bench(name: str, shape: dict, args) -> dict:
    torch.manual_seed(0)
    if args.family == "dinov3":
        config = DINOv3ViTConfig(**shape, num_register_tokens=4, image_size=224, patch_size=16)
        base_class, boost_class = DINOv3ViTModel, SpatialBoostDinov3ViTModel
    else:
        config = SiglipVisionConfig(**shape, image_size=224, patch_size=16)
        base_class, boost_class = SiglipVisionModel, SpatialBoostSiglipVisionModel
    config._attn_implementation = args.attn_implementation
    dtype = getattr(torch, args.dtype)
    base = base_class(config).to(args.device, dtype)
    boosted = boost_class.from_base(base)
    fused = copy.deepcopy(boosted)
    for index, attention in fused.dual_attentions.items():
        setattr(fused.encoder_layers[index], fused.boost_family.attention_attr, FusedDualAttention(attention))
    pixel_values = torch.randn(args.batch_size, 3, 224, 224, device=args.device, dtype=dtype)

    def forward(model):
        def run():
            with torch.no_grad():
                model(pixel_values=pixel_values)

        return run

    for model in (base, boosted, fused):
        model.eval()
    forward_times = interleaved_minima(
        {"base": forward(base), "shipped": forward(boosted), "fused": forward(fused)}, args.repeats
    )

    full = copy.deepcopy(base).train()
    stage3 = copy.deepcopy(boosted).train()
    stage3.freeze_for_spatialboost()
    stage3_fused = copy.deepcopy(fused).train()
    stage3_fused.freeze_for_spatialboost()
    optimizers = {
        name: torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        for name, model in [("full", full), ("stage3", stage3), ("stage3_fused", stage3_fused)]
    }
    step_times = interleaved_minima(
        {
            "full": train_step(full, optimizers["full"], pixel_values),
            "stage3": train_step(stage3, optimizers["stage3"], pixel_values),
            "stage3_fused": train_step(stage3_fused, optimizers["stage3_fused"], pixel_values),
        },
        args.repeats,
    )
    full_params = [p for p in full.parameters() if p.requires_grad]
    stage3_params = [p for p in stage3.parameters() if p.requires_grad]
    return {
        "shape": name,
        "forward_base_s": forward_times["base"],
        "forward_ratio_shipped": forward_times["shipped"] / forward_times["base"],
        "forward_ratio_fused": forward_times["fused"] / forward_times["base"],
        "step_full_s": step_times["full"],
        "step_ratio_shipped": step_times["stage3"] / step_times["full"],
        "step_ratio_fused": step_times["stage3_fused"] / step_times["full"],
        "trainable_full": sum(p.numel() for p in full_params),
        "trainable_stage3": sum(p.numel() for p in stage3_params),
        "optimizer_bytes_full": adamw_state_bytes(full_params),
        "optimizer_bytes_stage3": adamw_state_bytes(stage3_params),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", default="dinov3", choices=["dinov3", "siglip"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--attn-implementation", default="sdpa", choices=["sdpa", "eager"])
    parser.add_argument("--shapes", nargs="+", default=["ViT-S/16", "ViT-B/16"], choices=list(SHAPES))
    args = parser.parse_args()
    print(
        f"{args.family}, device {args.device}, {args.dtype}, batch {args.batch_size}, 224², attention {args.attn_implementation}, "
        f"torch threads {torch.get_num_threads()}, fastest of {args.repeats} interleaved rounds"
    )
    print(
        "| shape | base forward (s) | boosted / base forward: shipped (two branches) | fused variant | "
        "full FT step (s) | stage-3 / full FT step: shipped | fused variant | trainable params: full FT | stage 3 | "
        "AdamW state: full FT | stage 3 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.shapes:
        r = bench(name, SHAPES[name], args)
        print(
            f"| {r['shape']} | {r['forward_base_s']:.3f} | {r['forward_ratio_shipped']:.2f} | "
            f"{r['forward_ratio_fused']:.2f} | {r['step_full_s']:.3f} | {r['step_ratio_shipped']:.2f} | "
            f"{r['step_ratio_fused']:.2f} | {r['trainable_full'] / 1e6:.1f}M | {r['trainable_stage3'] / 1e6:.1f}M | "
            f"{r['optimizer_bytes_full'] / 2**20:.0f} MiB | {r['optimizer_bytes_stage3'] / 2**20:.0f} MiB |",
            flush=True,
        )


if __name__ == "__main__":
    main()
