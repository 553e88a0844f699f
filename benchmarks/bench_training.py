"""Cost of a SpatialBoost stage-3 step, next to a stage-2 step and to full fine-tuning of the encoder.

SpatialBoost (https://arxiv.org/abs/2603.22057) stage 3 trains only the encoder's Attn⁺ and a, with gradients that
flow back through the frozen LLM. This prints, for each model shape, one optimizer step (forward, backward, AdamW
with SpatialBoost's parameter groups) of three training modes on the same batch:

- stage 3: Attn⁺ and a train (SpatialBoost);
- stage 2: projector and LLM train, encoder frozen (visual instruction tuning);
- encoder full FT: every parameter of the BASE encoder (no Attn⁺) trains, in the same VLM, LLM frozen: what
  SpatialBoost replaces.

CPU (default): the tiny configuration and DINOv3 ViT-B/16 + a 0.1B Qwen2-shaped LM (SmolLM2-135M shapes), fp32,
each mode in a fresh process so that peak memory (max RSS) is its own; samples/s is the median of the timed steps.

    python benchmarks/bench_training.py
    python benchmarks/bench_training.py --device cuda     # ViT-L/16 + 7B shapes, bf16: tokens/s, MFU, peak memory

All weights are RANDOM: these are costs of shapes, not trained models.
"""

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import threading
import time

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import DINOv3ViTConfig, DINOv3ViTModel, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from modeling_spatialboost import SpatialBoostDinov3ViTModel
from spatialboost.training import freeze_for_stage, optimizer_parameter_groups
from spatialboost.vlm import SpatialBoostVLMForConditionalGeneration, build_spatialboost_vlm


IMAGE_TOKEN_ID = 3
SHAPES = {
    "tiny": {
        "encoder": dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=64
        ),
        "llm": dict(
            vocab_size=512,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        ),
        "batch": 4,
        "steps": 30,  # milliseconds a step: many, against the noise of a shared machine
        "views": 2,
        "text_tokens": 320,
    },
    "ViT-B/16 + 0.1B LM": {
        "encoder": dict(
            hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, image_size=224
        ),
        "llm": dict(
            vocab_size=49152,
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            tie_word_embeddings=True,
        ),
        "batch": 2,
        "steps": 3,
        "views": 2,
        "text_tokens": 320,
    },
    "ViT-L/16 + 7B LM": {  # DINOv3 ViT-L/16 + Qwen2-7B shapes
        "encoder": dict(
            hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, image_size=224
        ),
        "llm": dict(
            vocab_size=152064,
            hidden_size=3584,
            intermediate_size=18944,
            num_hidden_layers=28,
            num_attention_heads=28,
            num_key_value_heads=4,
        ),
        "batch": 8,
        "steps": 5,
        "views": 2,
        "text_tokens": 512,
    },
}
MODES = ("stage 3", "stage 2", "encoder full FT")
# Dense bf16 peak of the GPUs this may run on (FLOP/s), for MFU.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def build(shape: dict, mode: str, device: str, dtype: torch.dtype) -> SpatialBoostVLMForConditionalGeneration:
    """The VLM of `shape` (random weights) on `device`, with `mode`'s parameters trainable."""
    torch.manual_seed(0)
    with torch.device(device):
        base = DINOv3ViTModel._from_config(
            DINOv3ViTConfig(**shape["encoder"], patch_size=16, num_register_tokens=4), dtype=dtype
        )
        llm = Qwen2ForCausalLM._from_config(Qwen2Config(**shape["llm"], max_position_embeddings=8192), dtype=dtype)
    encoder = SpatialBoostDinov3ViTModel.from_base(base)
    model, _ = build_spatialboost_vlm(encoder, llm, tokenizer=ids_tokenizer())
    if mode == "stage 3":
        freeze_for_stage(model, 3)
    elif mode == "stage 2":
        freeze_for_stage(model, 2)
    else:
        # The same VLM reading the base encoder: every encoder weight trains, nothing else.
        model.model.vision_tower = base
        model.requires_grad_(False)
        base.requires_grad_(True)
    return model.train()


def ids_tokenizer() -> PreTrainedTokenizerFast:
    """A four-token tokenizer: the benchmark feeds token ids directly; only `<image>` (id 3) must exist."""
    vocab = {"<unk>": 0, "<|endoftext|>": 1, "<|im_end|>": 2, "<image>": IMAGE_TOKEN_ID}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        extra_special_tokens=["<image>"],
    )


class PeakRSS:
    """Samples the process's resident memory every millisecond while in use; `peak` is the highest seen."""

    def __enter__(self):
        self.peak, self.running = rss_bytes(), True
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()
        return self

    def sample(self):
        while self.running:
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.001)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()


def make_batch(model, shape: dict, device: str, dtype: torch.dtype) -> dict:
    """`batch` samples of `views` images each, the image tokens first, then text whose second half is trained."""
    config = model.config
    patches = (config.vision_config.image_size // config.vision_config.patch_size) ** 2
    generator = torch.Generator().manual_seed(0)
    batch, views, text = shape["batch"], shape["views"], shape["text_tokens"]
    ids = torch.randint(10, config.text_config.vocab_size, (batch, views * patches + text), generator=generator)
    ids[:, : views * patches] = IMAGE_TOKEN_ID
    labels = ids.clone()
    labels[:, : views * patches + text // 2] = -100
    size = config.vision_config.image_size
    pixel_values = torch.randn(batch * views, 3, size, size, generator=generator)
    return {
        "input_ids": ids.to(device),
        "attention_mask": torch.ones_like(ids).to(device),
        "pixel_values": pixel_values.to(device, dtype),
        "labels": labels.to(device),
    }


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def train_flops(model, batch: dict, mode: str) -> float:
    """Matmul FLOPs of one step (2 per multiply-add): forward everywhere, input gradients wherever a gradient must
    flow back to a trainable parameter, weight gradients of the trainable parameters."""
    tokens = batch["input_ids"].numel()
    image_tokens = batch["pixel_values"].shape[0] * model.config.image_seq_length
    llm = model.model.language_model
    encoder = model.model.vision_tower
    llm_params = (
        sum(p.numel() for p in llm.parameters()) - llm.embed_tokens.weight.numel() + model.lm_head.weight.numel()
    )
    encoder_params = sum(p.numel() for p in encoder.parameters())
    trainable_encoder = sum(p.numel() for p in encoder.parameters() if p.requires_grad)
    forward = 2 * llm_params * tokens + 2 * encoder_params * image_tokens
    if mode == "stage 2":  # LLM: input and weight gradients; the encoder gets none
        return forward + 4 * llm_params * tokens
    # Stage 3 and encoder FT: the LLM passes input gradients back to the image tokens; the encoder needs input
    # gradients through every layer and weight gradients of what trains.
    return forward + 2 * llm_params * tokens + 2 * encoder_params * image_tokens + 2 * trainable_encoder * image_tokens


def measure(shape_name: str, mode: str, device: str, steps: int) -> dict:
    shape = SHAPES[shape_name]
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = build(shape, mode, device, dtype)
    if device == "cuda":
        model.activation_checkpointing_enable()
    batch = make_batch(model, shape, device, dtype)
    optimizer = torch.optim.AdamW(
        optimizer_parameter_groups(model, {n for n, _ in model.named_parameters()}, 0.0, 1e-3), lr=1e-5
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def step():
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    gc.collect()
    rss_before = rss_bytes()
    with PeakRSS() as peak_rss:
        step()  # warm-up: optimizer states, allocator
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            step()
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    result = {
        "shape": shape_name,
        "mode": mode,
        "trainable": trainable,
        "samples_per_s": shape["batch"] / seconds,
        "tokens_per_s": batch["input_ids"].numel() / seconds,
        "step_s": seconds,
    }
    if device == "cuda":
        result["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        name = torch.cuda.get_device_name()
        peak = next((flops for key, flops in PEAK_BF16.items() if key in name), None)
        result["mfu"] = train_flops(model, batch, mode) / seconds / peak if peak else None
        result["gpu"] = name
    else:
        result["peak_mib"] = peak_rss.peak / 2**20
        result["step_peak_mib"] = (peak_rss.peak - rss_before) / 2**20
    return result


def out_of_memory(shape: str, mode: str) -> dict:
    nan = float("nan")
    return {
        "shape": shape,
        "mode": mode,
        "trainable": nan,
        "samples_per_s": nan,
        "tokens_per_s": nan,
        "step_s": nan,
        "peak_gib": nan,
        "mfu": None,
        "gpu": torch.cuda.get_device_name(),
    }


def print_table(results: list[dict], device: str) -> None:
    by_key = {(r["shape"], r["mode"]): r for r in results}
    if device == "cuda":
        print(f"\nGPU: {results[0]['gpu']}, bf16, activation checkpointing, random weights")
        print("| shape | mode | trainable params | samples/s | tokens/s | MFU | peak memory (GiB) |")
        print("|---|---|---|---|---|---|---|")
        for r in results:
            mfu = f"{100 * r['mfu']:.1f} %" if r["mfu"] is not None else "n/a"
            print(
                f"| {r['shape']} | {r['mode']} | {r['trainable'] / 1e6:,.1f} M | {r['samples_per_s']:.2f} | "
                f"{r['tokens_per_s']:,.0f} | {mfu} | {r['peak_gib']:.1f} |"
            )
    else:
        print("\nCPU, fp32, random weights; peak RSS = resident memory during the steps (model included); step peak =")
        print("that peak minus the resident memory of the built model (optimizer states, gradients, activations)")
        print("| shape | mode | trainable params | samples/s | step (s) | peak RSS (MiB) | step peak (MiB) |")
        print("|---|---|---|---|---|---|---|")
        for r in results:
            print(
                f"| {r['shape']} | {r['mode']} | {r['trainable'] / 1e6:,.3f} M | {r['samples_per_s']:.2f} | "
                f"{r['step_s']:.3f} | {r['peak_mib']:,.0f} | {r['step_peak_mib']:,.0f} |"
            )
    print("\nStage 3 relative to the other modes (same batch):")
    print(
        "| shape | throughput vs stage 2 | throughput vs encoder full FT | memory vs stage 2 | memory vs encoder full FT |"
    )
    print("|---|---|---|---|---|")
    memory = "peak_gib" if device == "cuda" else "step_peak_mib"
    for shape in dict.fromkeys(r["shape"] for r in results):
        s3, s2, ft = (by_key[(shape, mode)] for mode in MODES)
        print(
            f"| {shape} | {s3['samples_per_s'] / s2['samples_per_s']:.2f}× | "
            f"{s3['samples_per_s'] / ft['samples_per_s']:.2f}× | {s3[memory] / s2[memory]:.2f}× | "
            f"{s3[memory] / ft[memory]:.2f}× |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--shapes", nargs="+", default=None, help=f"Among {list(SHAPES)}.")
    parser.add_argument(
        "--steps", type=int, default=None, help="Timed steps per mode, after one warm-up (default: per shape)."
    )
    parser.add_argument("--one", nargs=2, metavar=("SHAPE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:  # a child process: one measurement, as JSON
        print(json.dumps(measure(*args.one, device=args.device, steps=args.steps or SHAPES[args.one[0]]["steps"])))
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here.")
    shapes = args.shapes or (["ViT-L/16 + 7B LM"] if args.device == "cuda" else ["tiny", "ViT-B/16 + 0.1B LM"])
    print(__doc__.split("\n")[0])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; median of the timed steps per mode")
    results = []
    for shape in shapes:
        for mode in MODES:
            if args.device == "cuda":  # one process: peak memory is reset per mode
                try:
                    results.append(measure(shape, mode, "cuda", args.steps or SHAPES[shape]["steps"]))
                except torch.cuda.OutOfMemoryError:
                    print(f"  {shape} / {mode}: out of GPU memory", flush=True)
                    results.append(out_of_memory(shape, mode))
                gc.collect()
                torch.cuda.empty_cache()
            else:
                child = subprocess.run(
                    [sys.executable, __file__, "--device", "cpu", "--one", shape, mode]
                    + (["--steps", str(args.steps)] if args.steps else []),
                    capture_output=True,
                    text=True,
                    check=True,
                )
                results.append(json.loads(child.stdout.strip().splitlines()[-1]))
            print(f"  measured {shape} / {mode}", flush=True)
    print_table(results, args.device)


if __name__ == "__main__":
    main()
