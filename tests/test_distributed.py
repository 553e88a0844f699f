"""Stage 3 on 2 CPU processes (`torchrun --nproc-per-node 2`, gloo) trains what one process trains at the same
global batch: both ranks end with the same weights, and the exported encoder equals the single-process one.

Why the two runs are comparable, and why they end bitwise equal here:

- Same rows per optimizer step. Global batch 4 = 2 processes × 2 per device, against 1 process × 2 per device × 2
  gradient-accumulation steps. Accelerate's seedable sampler gives every process the same permutation and deals
  per-device batches round-robin, so rank r's batch is the single process's micro-batch r: the same rows, padded to
  the same length, hence the same forward arithmetic. (1 process × 4 per device is the same global batch too, but pads
  the rows to a longer length; its weights differ from the 2-process run's by ~4e-9 after 3 steps.)
- Same loss normalisation. transformers counts the trained tokens of the whole global batch (over the accumulation
  steps, and over the processes with `average_tokens_across_devices`), so both runs follow the gradient of the mean
  over the global batch's tokens. The world-size factor on the loss and DDP's averaging are powers of two, exact in
  floating point, and a sum of two gradients is the same in either order.
- No randomness. The VLM keeps its encoder in eval mode (no DINOv3 RoPE jitter, no drop path); the tiny LM has no
  dropout; `Attn⁺` is moved off `Attn` first so that `a` has gradients from the first step.

Tolerance: the exported encoders are compared with atol 1e-6, rtol 0, room for another reduction order only.
Measured: bitwise equal. The largest weight update of the 3 steps is 0.02 (asserted above 1e-4); the single process at
global batch 2 instead of 4 ends 0.026 away, so a different batch composition or data order fails the test.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from trl import TrlParser

from spatialboost.tiny import build_tokenizer, dataset_texts, tiny_dataset, tiny_vlm


RECIPES = Path(__file__).resolve().parent.parent / "recipes"
# Runs recipes/stage3.py's `main` as its `__main__` does, then writes this rank's trainable weights.
RANK_SCRIPT = """
import importlib.util, json, sys
from safetensors.torch import save_file
from trl import TrlParser

spec = importlib.util.spec_from_file_location("stage3", sys.argv[1])
recipe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recipe)
trainer = recipe.main(*TrlParser(recipe.ARGUMENTS).parse_args_and_config(sys.argv[3:]))
rank = trainer.args.process_index
weights = {name: p.detach().contiguous() for name, p in trainer.model.named_parameters() if p.requires_grad}
save_file(weights, f"{sys.argv[2]}/rank{rank}.safetensors")
info = {"world_size": trainer.args.world_size, "backend": trainer.accelerator.state.backend}
open(f"{sys.argv[2]}/rank{rank}.json", "w").write(json.dumps(info))
"""


def stage3_arguments(folder: Path, run: str, per_device: int, accumulation: int) -> list[str]:
    return [
        *("--config", str(RECIPES / "configs" / "tiny" / "stage3.yaml")),
        *("--model_name_or_path", str(folder / "stage2"), "--dataset_names", str(folder / "data")),
        *("--output_dir", str(folder / run / "vlm"), "--encoder_output_dir", str(folder / run / "encoder")),
        *("--per_device_train_batch_size", str(per_device), "--gradient_accumulation_steps", str(accumulation)),
        *("--max_steps", "3", "--warmup_steps", "0", "--save_strategy", "no", "--use_cpu", "true"),
        *("--disable_tqdm", "true", "--report_to", "none"),
    ]


@pytest.mark.slow
def test_stage3_on_two_cpu_processes_equals_one_process_at_the_same_global_batch(tmp_path):
    dataset = tiny_dataset(16, views=(1, 2), image_size=32)
    dataset.to_parquet(str(tmp_path / "data" / "train-00000-of-00001.parquet"))
    model, processor = tiny_vlm(build_tokenizer(dataset_texts(dataset)))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ".attn_plus." in name and not name.endswith("mix_logit"):
                parameter.add_(0.05 * torch.randn_like(parameter))
    model.save_pretrained(tmp_path / "stage2")
    processor.save_pretrained(tmp_path / "stage2")

    (tmp_path / "distributed").mkdir()
    (tmp_path / "rank.py").write_text(RANK_SCRIPT)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            str(tmp_path / "rank.py"),
        ]
        + [str(RECIPES / "stage3.py"), str(tmp_path / "distributed")]
        + stage3_arguments(tmp_path, "distributed", per_device=2, accumulation=1),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
        timeout=900,  # a rank that never joins the group would otherwise hang CI
    )
    assert result.returncode == 0, result.stderr[-4000:]
    for rank in (0, 1):  # two processes really ran, as one gloo group
        assert json.loads((tmp_path / "distributed" / f"rank{rank}.json").read_text()) == {
            "world_size": 2,
            "backend": "gloo",
        }
    rank0, rank1 = (load_file(tmp_path / "distributed" / f"rank{rank}.safetensors") for rank in (0, 1))
    assert rank0.keys() == rank1.keys() and all(".attn_plus." in name for name in rank0)
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name

    spec = importlib.util.spec_from_file_location("stage3", RECIPES / "stage3.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    arguments = stage3_arguments(tmp_path, "single", per_device=2, accumulation=2)
    single = recipe.main(*TrlParser(recipe.ARGUMENTS).parse_args_and_config(arguments))
    assert single.args.world_size == 1

    initial = load_file(tmp_path / "stage2" / "model.safetensors")
    assert max((rank0[name] - initial[name]).abs().max() for name in rank0) > 1e-4  # the steps moved the weights
    distributed, alone = (
        load_file(tmp_path / run / "encoder" / "model.safetensors") for run in ("distributed", "single")
    )
    assert distributed.keys() == alone.keys()
    for name in alone:
        torch.testing.assert_close(distributed[name], alone[name], rtol=0, atol=1e-6, msg=name)
