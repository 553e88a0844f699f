"""`spatialboost-quickstart`: the offline tour of SpatialBoost's encoder side, in under a minute on a laptop CPU.

For each supported family (DINOv3 ViT, SigLIP FixRes, SigLIP2 NaFlex) it builds a tiny base encoder with RANDOM
weights (the Hub cannot be reached here; these demonstrate the mechanics, they are not trained models), saves it as
a base checkpoint folder, and then does what a user does with a real checkpoint id
(https://arxiv.org/abs/2603.22057):

1. converts it with `convert_to_spatialboost` and checks that the boosted encoder's outputs equal the base's;
2. freezes all but `Attn⁺` and `a` and takes a few optimizer steps, after which the outputs differ and α moved;
3. saves the boosted encoder and reloads it through remote code in a fresh process that cannot import this
   package, checking that the outputs match.

The three-stage training, datasets and probes are added to this tour as they land.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file, save_file
from transformers import (
    DINOv3ViTConfig,
    DINOv3ViTModel,
    Siglip2VisionConfig,
    Siglip2VisionModel,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from modeling_spatialboost.convert_to_spatialboost import convert_to_spatialboost


TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}
BASES = {
    "dinov3_vit": lambda: DINOv3ViTModel(DINOv3ViTConfig(**TINY, patch_size=16, image_size=64, num_register_tokens=4)),
    "siglip (FixRes)": lambda: SiglipVisionModel(SiglipVisionConfig(**TINY, patch_size=16, image_size=64)),
    "siglip2 (NaFlex)": lambda: Siglip2VisionModel(Siglip2VisionConfig(**TINY, patch_size=16, num_patches=16)),
}

RELOAD_WITHOUT_PACKAGE = """
import sys
sys.modules["modeling_spatialboost"] = None  # as on a machine where SpatialBoost is not installed
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoImageProcessor, AutoModel

folder = sys.argv[1]
model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
AutoImageProcessor.from_pretrained(folder)
with torch.no_grad():
    output = model(**load_file(f"{folder}/inputs.safetensors")).last_hidden_state
save_file({"last_hidden_state": output}, f"{folder}/remote_outputs.safetensors")
print(type(model).__module__)
"""


def scene_image(seed: int) -> Image.Image:
    """A small drawn 'room': floor, wall and a few boxes, so the processors see a real RGB image."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (96, 72), (200, 190, 170))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 44, 96, 72], fill=(120, 100, 80))
    for _ in range(3):
        x, y = rng.integers(0, 70), rng.integers(20, 50)
        draw.rectangle([x, y, x + rng.integers(10, 25), y + rng.integers(10, 20)], fill=tuple(rng.integers(0, 255, 3)))
    return image


def tour(name: str, make_base, workdir: Path, steps: int) -> dict:
    torch.manual_seed(0)
    base = make_base().eval()
    base_dir, boosted_dir = (
        workdir / f"{base.config.model_type}-base",
        workdir / f"{base.config.model_type}-spatialboost",
    )
    base.save_pretrained(base_dir)
    boosted = convert_to_spatialboost(base_dir)
    boosted.image_processor.save_pretrained(base_dir)  # a real base checkpoint ships its processor
    inputs = dict(boosted.image_processor(images=[scene_image(0), scene_image(1)], return_tensors="pt"))
    boosted.eval()
    with torch.no_grad():
        base_out = base(**inputs).last_hidden_state
        converted_gap = (boosted(**inputs).last_hidden_state - base_out).abs().max().item()

    # A few stage-3-style steps on a stand-in objective (pull patch features towards a random target).
    trainable = boosted.freeze_for_spatialboost()
    optimizer = torch.optim.AdamW([p for p in boosted.parameters() if p.requires_grad], lr=1e-2)
    target = torch.randn_like(base_out)
    boosted.train()
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(boosted(**inputs).last_hidden_state, target).backward()
        optimizer.step()
    boosted.eval()
    with torch.no_grad():
        trained_out = boosted(**inputs).last_hidden_state
    frozen_unchanged = all(
        torch.equal(p, base.state_dict()[n]) for n, p in boosted.state_dict().items() if ".attn_plus." not in n
    )

    boosted.save_pretrained(boosted_dir)
    save_file(inputs, boosted_dir / "inputs.safetensors")
    result = subprocess.run(
        [sys.executable, "-c", RELOAD_WITHOUT_PACKAGE, str(boosted_dir)], capture_output=True, text=True, cwd=workdir
    )
    if result.returncode != 0:
        raise RuntimeError(f"remote-code reload failed:\n{result.stderr}")
    remote_out = load_file(boosted_dir / "remote_outputs.safetensors")["last_hidden_state"]
    return {
        "family": name,
        "converted_gap": converted_gap,
        "trainable": sum(boosted.get_parameter(n).numel() for n in trainable),
        "total": sum(p.numel() for p in boosted.parameters()),
        "trained_gap": (trained_out - base_out).abs().max().item(),
        "frozen_unchanged": frozen_unchanged,
        "mean_alpha": np.mean(list(boosted.mean_alpha().values())),
        "remote_gap": (remote_out - trained_out).abs().max().item(),
        "folder": boosted_dir,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output-dir", default=None, help="Keep the converted folders here (default: a temp dir).")
    parser.add_argument("--steps", type=int, default=5, help="Optimizer steps on the stand-in objective.")
    args = parser.parse_args(argv)
    workdir = Path(args.output_dir or tempfile.mkdtemp(prefix="spatialboost-quickstart-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print("SpatialBoost quickstart (offline; tiny encoders with RANDOM weights, not trained models)\n")
    print(
        "| family | max |boosted − base| at conversion | trainable / total params | max |boosted − base| after "
        f"{args.steps} steps | frozen weights unchanged | mean α | max |remote-code − in-process| |"
    )
    print("|---|---|---|---|---|---|---|")
    failures = []
    for name, make_base in BASES.items():
        r = tour(name, make_base, workdir, args.steps)
        print(
            f"| {r['family']} | {r['converted_gap']:.1e} | {r['trainable']:,} / {r['total']:,} | {r['trained_gap']:.3f} | "
            f"{r['frozen_unchanged']} | {r['mean_alpha']:.3f} | {r['remote_gap']:.1e} |",
            flush=True,
        )
        if r["converted_gap"] > 1e-5 or r["remote_gap"] > 1e-5 or not r["frozen_unchanged"] or r["trained_gap"] == 0:
            failures.append(r["family"])
    print(f"\nSaved SpatialBoost folders under {workdir} (config.json with auto_map, model.safetensors, remote code,")
    print("preprocessor_config.json, README.md model card).")
    if failures:
        raise SystemExit(f"invariant broken for: {', '.join(failures)}")
    print("All invariants held: conversion is exact, only Attn⁺ and a train, remote code reproduces the outputs.")


if __name__ == "__main__":
    main()
