"""The conversion invariant and a stage-3 step at the real sizes of the supported encoders (random weights).

For each shape it converts an in-memory base encoder, prints the largest |boosted − base| over the last hidden state
and the pooled output (exact conversion gives 0), the conversion time, and a stage-3 training step (forward +
backward with only Attn⁺ and a trainable, gradient checkpointing on) with its peak GPU memory.

    python benchmarks/check_real_shapes.py --device cuda --dtype bfloat16     # on a GPU machine
    python benchmarks/check_real_shapes.py --shapes dinov3-vits16 siglip2-base-patch16-224 --batch-size 2  # CPU
"""

import argparse
import time

import torch
from transformers import DINOv3ViTConfig, DINOv3ViTModel, SiglipVisionConfig, SiglipVisionModel

from modeling_spatialboost import SpatialBoostDinov3ViTModel, SpatialBoostSiglipVisionModel


# Published configurations of the checkpoints in README's table (architecture fields only).
SHAPES = {
    "dinov3-vits16": (
        DINOv3ViTConfig,
        dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=12, num_attention_heads=6),
    ),
    "dinov3-vitb16": (
        DINOv3ViTConfig,
        dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12),
    ),
    "dinov3-vitl16": (
        DINOv3ViTConfig,
        dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16),
    ),
    "dinov3-vith16plus": (
        DINOv3ViTConfig,
        dict(
            hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20, use_gated_mlp=True
        ),
    ),
    "dinov3-vit7b16": (
        DINOv3ViTConfig,
        dict(
            hidden_size=4096,
            intermediate_size=8192,
            num_hidden_layers=40,
            num_attention_heads=32,
            use_gated_mlp=True,
            layerscale_value=1e-5,
            key_bias=False,
        ),
    ),
    "siglip2-base-patch16-224": (
        SiglipVisionConfig,
        dict(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            patch_size=16,
            image_size=224,
        ),
    ),
    "siglip2-so400m-patch14-384": (
        SiglipVisionConfig,
        dict(
            hidden_size=1152,
            intermediate_size=4304,
            num_hidden_layers=27,
            num_attention_heads=16,
            patch_size=14,
            image_size=384,
        ),
    ),
    "siglip2-giant-opt-patch16-384": (
        SiglipVisionConfig,
        dict(
            hidden_size=1536,
            intermediate_size=6144,
            num_hidden_layers=40,
            num_attention_heads=16,
            patch_size=16,
            image_size=384,
        ),
    ),
}
CLASSES = {
    DINOv3ViTConfig: (DINOv3ViTModel, SpatialBoostDinov3ViTModel),
    SiglipVisionConfig: (SiglipVisionModel, SpatialBoostSiglipVisionModel),
}


def check(name: str, args) -> str:
    config_class, fields = SHAPES[name]
    base_class, boost_class = CLASSES[config_class]
    extra = {"num_register_tokens": 4, "image_size": 224, "patch_size": 16} if config_class is DINOv3ViTConfig else {}
    config = config_class(**fields, **extra)
    config._attn_implementation = "sdpa"
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    with torch.device(args.device):
        base = base_class(config).to(dtype).eval()
    start = time.perf_counter()
    boosted = boost_class.from_base(base).eval()
    convert_s = time.perf_counter() - start
    size = config.image_size
    pixel_values = torch.randn(args.batch_size, 3, size, size, device=args.device, dtype=dtype)
    with torch.no_grad():
        expected, actual = base(pixel_values=pixel_values), boosted(pixel_values=pixel_values)
    gap = max(
        (actual.last_hidden_state - expected.last_hidden_state).abs().max().item(),
        (actual.pooler_output - expected.pooler_output).abs().max().item(),
    )
    del base, expected, actual

    boosted.freeze_for_spatialboost()
    boosted.activation_checkpointing_enable()
    boosted.train()
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    boosted(pixel_values=pixel_values).last_hidden_state.float().pow(2).mean().backward()
    if args.device == "cuda":
        torch.cuda.synchronize()
    step_s = time.perf_counter() - start
    peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if args.device == "cuda" else "n/a"
    total = sum(p.numel() for p in boosted.parameters())
    trainable = sum(p.numel() for p in boosted.parameters() if p.requires_grad)
    return f"| {name} | {total / 1e9:.2f}B | {trainable / 1e9:.2f}B | {gap:.1e} | {convert_s:.1f} | {step_s:.2f} | {peak} |"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    args = parser.parse_args()
    print(f"device {args.device}, {args.dtype}, batch {args.batch_size}, random weights")
    print(
        "| encoder shape | params (boosted) | trainable | max |boosted − base| | convert (s) | one stage-3 step, first call (s) | peak memory |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.shapes:
        print(check(name, args), flush=True)
        if args.device == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
