"""Cost of SpatialBoost's dual-channel attention against the base encoder, measured side by side in one run.

For DINOv3 (or SigLIP, `--family siglip`) ViT shapes (random weights, 224², batch 8, fp32 by default) it measures,
every variant once per round, round after round (so that drift in machine speed hits all alike):

- the forward of the boosted encoder over the base (upstream) encoder's forward;
- a stage-3 training step (forward + backward + AdamW, only Attn⁺ and a trainable) over a full fine-tuning step of
  the base encoder;
- on CUDA, the peak memory of one forward and one step of each (allocated on top of the resident weights and
  optimizer state; not measurable per model on CPU, where it prints null);

for three variants of the boosted encoder: `two_pass` (Attn and Attn⁺ as two plain upstream passes), `fused` (one
q/k/v GEMM, one attention call over both head sets, weight gradients only for what trains) and `compiled` (`fused`
under `torch.compile`; its ratios are also given against the compiled base encoder). It prints a table per shape,
then one JSON line per shape: `forward_ratio` and `stage3_step_ratio` of the default variant (what
`attention_fusion` defaults to), each variant's ratio of the fastest rounds, the spread (min, median, max) of the
per-round ratios, and `fused` over `two_pass`.

    python benchmarks/bench_encoder.py                                     # CPU, ViT-B/16, 224², batch 8
    python benchmarks/bench_encoder.py --shapes ViT-Ti/16 --image-size 112 --batch-size 4 --repeats 5 --no-compile
    python benchmarks/bench_encoder.py --device cuda --dtype bfloat16 --batch-size 64 --shapes ViT-B/16 ViT-L/16
"""

import argparse
import copy
import json
import statistics
import time

import torch
from transformers import DINOv3ViTConfig, DINOv3ViTModel, SiglipVisionConfig, SiglipVisionModel

from modeling_spatialboost import SpatialBoostDinov3ViTModel, SpatialBoostSiglipVisionModel


SHAPES = {
    "ViT-Ti/16": {"hidden_size": 192, "intermediate_size": 768, "num_attention_heads": 3, "num_hidden_layers": 12},
    "ViT-S/16": {"hidden_size": 384, "intermediate_size": 1536, "num_attention_heads": 6, "num_hidden_layers": 12},
    "ViT-B/16": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12},
    "ViT-L/16": {"hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24},
}
VARIANTS = ("two_pass", "fused", "compiled")


def interleaved_rounds(fns: dict, repeats: int, device: str) -> dict[str, list[float]]:
    """Runs each candidate once per round, round after round, after one warm-up call each (which also compiles)."""
    for fn in fns.values():
        fn()
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            samples[name].append(time.perf_counter() - start)
    return samples


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_mib(fns: dict, device: str) -> dict[str, float | None]:
    """Peak memory each call allocates on top of what is resident (CUDA only; `None` elsewhere)."""
    if not device.startswith("cuda"):
        return dict.fromkeys(fns)
    peaks = {}
    for name, fn in fns.items():
        synchronize(device)
        resident = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        synchronize(device)
        peaks[name] = (torch.cuda.max_memory_allocated(device) - resident) / 2**20
    return peaks


def ratios(samples: dict[str, list[float]], numerator: str, denominator: str) -> dict:
    """`numerator` over `denominator`: of the fastest rounds (on a shared machine the minimum is the time least
    inflated by other work) and per round (the spread)."""
    per_round = [a / b for a, b in zip(samples[numerator], samples[denominator], strict=True)]
    return {
        "ratio": min(samples[numerator]) / min(samples[denominator]),
        "per_round_min": min(per_round),
        "per_round_median": statistics.median(per_round),
        "per_round_max": max(per_round),
    }


def train_step(model, optimizer, pixel_values):
    def step():
        optimizer.zero_grad(set_to_none=True)
        model(pixel_values=pixel_values).last_hidden_state.float().pow(2).mean().backward()
        optimizer.step()

    return step


def adamw_state_bytes(parameters) -> int:
    return sum(2 * p.numel() * p.element_size() for p in parameters)  # exp_avg and exp_avg_sq


def boosted_variant(boosted, variant: str):
    model = copy.deepcopy(boosted)
    model.config.attention_fusion = "two_pass" if variant == "two_pass" else "fused"
    return model


def bench(name: str, shape: dict, args) -> dict:
    torch.manual_seed(0)
    if args.family == "dinov3":
        config = DINOv3ViTConfig(**shape, num_register_tokens=4, image_size=args.image_size, patch_size=16)
        base_class, boost_class = DINOv3ViTModel, SpatialBoostDinov3ViTModel
    else:
        config = SiglipVisionConfig(**shape, image_size=args.image_size, patch_size=16)
        base_class, boost_class = SiglipVisionModel, SpatialBoostSiglipVisionModel
    config._attn_implementation = args.attn_implementation
    dtype = getattr(torch, args.dtype)
    base = base_class(config).to(args.device, dtype)
    boosted = boost_class.from_base(base)
    default_variant = boosted.config.attention_fusion
    variants = [v for v in VARIANTS if v != "compiled" or args.compile]
    pixel_values = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=args.device, dtype=dtype)

    def forward(model):
        def run():
            with torch.no_grad():
                model(pixel_values=pixel_values)

        return run

    models = {"base": base.eval()}
    for variant in variants:
        models[variant] = boosted_variant(boosted, variant).eval()
    if args.compile:
        models["compiled_base"] = torch.compile(copy.deepcopy(base))
        models["compiled"] = torch.compile(models["compiled"])
    forward_fns = {key: forward(model) for key, model in models.items()}
    forward_samples = interleaved_rounds(forward_fns, args.repeats, args.device)
    forward_peaks = peak_mib(forward_fns, args.device)
    del models, forward_fns

    trainers = {"full": copy.deepcopy(base).train()}
    for variant in variants:
        trainers[variant] = boosted_variant(boosted, variant).train()
        trainers[variant].freeze_for_spatialboost()
    if args.compile:
        trainers["compiled_full"] = copy.deepcopy(base).train()
    optimizers = {
        key: torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        for key, model in trainers.items()
    }
    if args.compile:
        for key in ("compiled", "compiled_full"):
            trainers[key] = torch.compile(trainers[key])
    step_fns = {key: train_step(model, optimizers[key], pixel_values) for key, model in trainers.items()}
    step_samples = interleaved_rounds(step_fns, args.repeats, args.device)
    step_peaks = peak_mib(step_fns, args.device)
    full_params = [p for p in base.parameters()]
    stage3_params = [p for p in trainers["fused"].parameters() if p.requires_grad]
    result = {
        "family": args.family,
        "shape": name,
        "device": args.device,
        "dtype": args.dtype,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "attention": args.attn_implementation,
        "torch_threads": torch.get_num_threads(),
        "rounds": args.repeats,
        "default_variant": default_variant,
        "forward_base_s": min(forward_samples["base"]),
        "step_full_s": min(step_samples["full"]),
        "trainable_full": sum(p.numel() for p in full_params),
        "trainable_stage3": sum(p.numel() for p in stage3_params),
        "optimizer_bytes_full": adamw_state_bytes(full_params),
        "optimizer_bytes_stage3": adamw_state_bytes(stage3_params),
        "forward": {variant: ratios(forward_samples, variant, "base") for variant in variants},
        "stage3_step": {variant: ratios(step_samples, variant, "full") for variant in variants},
        "fused_vs_two_pass": {
            "forward": ratios(forward_samples, "fused", "two_pass"),
            "stage3_step": ratios(step_samples, "fused", "two_pass"),
        },
        "forward_peak_mib": forward_peaks,
        "step_peak_mib": step_peaks,
    }
    if args.compile:
        result["forward"]["compiled_vs_compiled_base"] = ratios(forward_samples, "compiled", "compiled_base")
        result["stage3_step"]["compiled_vs_compiled_full"] = ratios(step_samples, "compiled", "compiled_full")
    result["forward_ratio"] = result["forward"][default_variant]["ratio"]
    result["stage3_step_ratio"] = result["stage3_step"][default_variant]["ratio"]
    return result


def report(result: dict) -> None:
    """The figures of one shape as a table; the JSON line follows at the end of the run."""

    def mib(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    def cell(figures: dict) -> str:
        return f"{figures['ratio']:.2f} ({figures['per_round_min']:.2f}-{figures['per_round_max']:.2f})"

    print(
        f"{result['family']} {result['shape']}, {result['image_size']}², batch {result['batch_size']}, "
        f"{result['dtype']}, {result['device']}, {result['attention']}, {result['torch_threads']} threads, "
        f"fastest of {result['rounds']} rounds; default variant: {result['default_variant']}"
    )
    print(
        f"  base forward {result['forward_base_s']:.4f} s (peak {mib(result['forward_peak_mib']['base'])} MiB), "
        f"full FT step {result['step_full_s']:.4f} s (peak {mib(result['step_peak_mib']['full'])} MiB)"
    )
    print(f"  {'variant':<28} {'forward / base':<20} {'stage-3 step / full FT':<24} peak MiB fwd / step")
    for variant, forward_figures in result["forward"].items():
        step_figures = result["stage3_step"][variant]
        peaks = f"{mib(result['forward_peak_mib'].get(variant))} / {mib(result['step_peak_mib'].get(variant))}"
        print(f"  {variant:<28} {cell(forward_figures):<20} {cell(step_figures):<24} {peaks}")
    fused = result["fused_vs_two_pass"]
    print(f"  {'fused / two_pass':<28} {cell(fused['forward']):<20} {cell(fused['stage3_step']):<24}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", default="dinov3", choices=["dinov3", "siglip"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=7, help="Timed rounds after one warm-up round.")
    parser.add_argument("--attn-implementation", default="sdpa", choices=["sdpa", "eager"])
    parser.add_argument("--shapes", nargs="+", default=["ViT-B/16"], choices=list(SHAPES))
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="Leave out the compiled variant.")
    args = parser.parse_args()
    results = []
    for name in args.shapes:
        results.append(bench(name, SHAPES[name], args))
        report(results[-1])
    for result in results:
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
