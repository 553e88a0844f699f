"""The SpatialBoost VLM as a Hub-native model: a saved folder carries `auto_map` and flat remote code, loads where this
package cannot be imported, loads without `trust_remote_code` where it is, and TRL's own scripts train it.

TRL's `trl/scripts/sft.py` ships in TRL's wheel and is run here as it is. `examples/scripts/sft_vlm.py` ships in
neither TRL's wheel nor its sdist (`pip download trl==1.16.0 --no-binary :all:` has no `examples/`), and GitHub cannot
be reached from CI, so the test of it runs the calls that script makes, against TRL 1.16's API, in a process that
cannot import SpatialBoost.

Tiny random-weight models built in code (spatialboost.tiny); nothing is downloaded.
"""

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling
from trl.trainer.utils import create_model_from_path

from modeling_spatialboost import SpatialBoostVLMConfig, SpatialBoostVLMForConditionalGeneration, SpatialBoostVLMModel
from spatialboost.tiny import build_tokenizer, dataset_texts, tiny_dataset, tiny_vlm


REMOTE_CODE_FILES = {
    "configuration_spatialboost.py",
    "modeling_spatialboost.py",
    "configuration_spatialboost_vlm.py",
    "modeling_spatialboost_vlm.py",
}
ALLOWED_IMPORTS = {"torch", "transformers", "huggingface_hub", "safetensors", *sys.stdlib_module_names}
# Prepended to every script run in a subprocess: SpatialBoost cannot be imported there, as where it is not installed.
WITHOUT_THE_PACKAGE = """
import sys
sys.modules["modeling_spatialboost"] = None
sys.modules["spatialboost"] = None
"""
REMOTE_ROUND_TRIP = """
import torch
from datasets import load_dataset
from safetensors.torch import save_file
from transformers import AutoModelForImageTextToText, AutoProcessor
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

folder, data, output = sys.argv[1:4]
model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True).eval()
assert "transformers_modules" in type(model).__module__, type(model).__module__
processor = AutoProcessor.from_pretrained(folder)
rows = load_dataset(data, split="train").select(range(2))
batch = DataCollatorForVisionLanguageModeling(processor)([{"images": r["images"], "messages": r["messages"]} for r in rows])
with torch.no_grad():
    logits = model(**batch).logits
save_file({**batch, "logits": logits}, output)
"""
# The calls of TRL's examples/scripts/sft_vlm.py, with TRL 1.16's argument names (`trust_remote_code` lives on
# `SFTConfig`, `dtype` on `ModelConfig`): parse (ScriptArguments, SFTConfig, ModelConfig); the model from
# `AutoModelForImageTextToText.from_pretrained(..., trust_remote_code=...)`, its processor from `AutoProcessor`; the
# dataset from `load_dataset(dataset_name)`; `SFTTrainer` with `peft_config=get_peft_config(model_args)`; train; save.
SFT_VLM_CALLS = """
import torch
from datasets import load_dataset
from transformers import AutoModelForImageTextToText, AutoProcessor
from trl import ModelConfig, ScriptArguments, SFTConfig, SFTTrainer, TrlParser, get_peft_config

script_args, training_args, model_args = TrlParser((ScriptArguments, SFTConfig, ModelConfig)).parse_args_and_config()
dtype = model_args.dtype if model_args.dtype in ("auto", None) else getattr(torch, model_args.dtype)
model = AutoModelForImageTextToText.from_pretrained(
    model_args.model_name_or_path,
    revision=model_args.model_revision,
    attn_implementation=model_args.attn_implementation,
    dtype=dtype,
    trust_remote_code=training_args.trust_remote_code,
)
assert "transformers_modules" in type(model).__module__, type(model).__module__
processor = AutoProcessor.from_pretrained(model_args.model_name_or_path, trust_remote_code=training_args.trust_remote_code)
dataset = load_dataset(script_args.dataset_name, name=script_args.dataset_config)
trainer = SFTTrainer(
    model=model,
    args=training_args,
    train_dataset=dataset[script_args.dataset_train_split],
    processing_class=processor,
    peft_config=get_peft_config(model_args),
)
trainer.train()
trainer.save_model(training_args.output_dir)
"""
# TRL's own `trl sft` script, unchanged, from the installed wheel.
TRL_SFT_SCRIPT = """
import runpy
sys.argv = ["sft.py", *sys.argv[1:]]
runpy.run_module("trl.scripts.sft", run_name="__main__")
"""
TRAINING_ARGUMENTS = [
    "--trust_remote_code",
    "--max_steps",
    "2",
    "--per_device_train_batch_size",
    "2",
    "--learning_rate",
    "1e-3",
    "--use_cpu",
    "--save_strategy",
    "no",
    "--report_to",
    "none",
    "--disable_tqdm",
    "true",
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny VLM (Attn⁺ moved off Attn, so that a lost weight shows) saved with its processor, and a tiny dataset."""
    folder = tmp_path_factory.mktemp("vlm-hub")
    dataset = tiny_dataset(8, views=(1, 2), image_size=32)
    dataset.to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    model, processor = tiny_vlm(build_tokenizer(dataset_texts(dataset)))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ".attn_plus." in name:
                parameter.add_(0.1 * torch.randn_like(parameter))
    model.save_pretrained(folder / "vlm")
    processor.save_pretrained(folder / "vlm")
    return folder, model.eval(), processor, dataset


def run_without_the_package(script: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_THE_PACKAGE + script, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        stdin=subprocess.DEVNULL,  # transformers asks on a terminal whether to run remote code; here nobody answers
        env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(cwd / "hf_home"), "TOKENIZERS_PARALLELISM": "false", "PATH": ""},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def test_saved_vlm_has_auto_map_and_flat_self_contained_remote_code(saved):
    folder, model, _, _ = saved
    config = json.loads((folder / "vlm" / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_spatialboost_vlm.SpatialBoostVLMConfig",
        "AutoModel": "modeling_spatialboost_vlm.SpatialBoostVLMModel",
        "AutoModelForImageTextToText": "modeling_spatialboost_vlm.SpatialBoostVLMForConditionalGeneration",
    }
    assert config["auto_map"] == model.config.auto_map  # what clients read in memory is what the folder says
    files = {path.name for path in (folder / "vlm").iterdir()}
    assert REMOTE_CODE_FILES <= files
    for name in REMOTE_CODE_FILES:
        for node in ast.walk(ast.parse((folder / "vlm" / name).read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                # Flat: relative imports only of files beside this one (transformers has no sub-packages here).
                assert node.level == 1 and f"{node.module}.py" in files, (name, node.module)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module]
                assert {module.split(".")[0] for module in modules} <= ALLOWED_IMPORTS, (name, modules)


@pytest.mark.slow
def test_remote_code_round_trip_without_the_package(saved):
    folder, model, processor, dataset = saved
    run_without_the_package(
        REMOTE_ROUND_TRIP, folder / "vlm", folder / "data", folder / "remote.safetensors", cwd=folder
    )
    remote = load_file(folder / "remote.safetensors")
    batch = DataCollatorForVisionLanguageModeling(processor)(
        [{"images": row["images"], "messages": row["messages"]} for row in dataset.select(range(2))]
    )
    for key, value in batch.items():  # the processor, loaded by AutoProcessor there, prepares the same batch
        assert torch.equal(remote[key], value), key
    with torch.no_grad():
        torch.testing.assert_close(remote["logits"], model(**batch).logits)


def test_with_the_package_the_auto_classes_need_no_remote_code(saved):
    folder, _, _, _ = saved
    assert type(AutoConfig.from_pretrained(folder / "vlm")) is SpatialBoostVLMConfig
    assert type(AutoModel.from_pretrained(folder / "vlm")) is SpatialBoostVLMModel
    assert type(AutoModelForImageTextToText.from_pretrained(folder / "vlm")) is SpatialBoostVLMForConditionalGeneration


def test_trl_loads_a_folder_saved_before_it_had_remote_code(saved, tmp_path):
    """TRL's `create_model_from_path` (what `trl sft` calls) picks the Auto class from `config.auto_map`."""
    folder, _, _, _ = saved
    shutil.copytree(folder / "vlm", tmp_path / "old", ignore=shutil.ignore_patterns("*.py"))
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    del config["auto_map"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    assert type(create_model_from_path(str(tmp_path / "old"))) is SpatialBoostVLMForConditionalGeneration


def assert_trained_and_hub_native(before: Path, after: Path) -> None:
    """The projector, the LM and Attn⁺ moved; the saved folder is again a remote-code folder."""
    initial, trained = load_file(before / "model.safetensors"), load_file(after / "model.safetensors")
    assert initial.keys() == trained.keys()
    moved = {name for name in initial if not torch.equal(initial[name], trained[name])}
    for part in ("model.multi_modal_projector.", "model.language_model.layers.", ".attn_plus.q_proj."):
        assert any(part in name for name in moved), part
    assert REMOTE_CODE_FILES <= {path.name for path in after.iterdir()}
    assert json.loads((after / "config.json").read_text())["auto_map"]["AutoModelForImageTextToText"]
    assert type(AutoModelForImageTextToText.from_pretrained(after)) is SpatialBoostVLMForConditionalGeneration


@pytest.mark.slow
def test_trl_sft_script_trains_the_vlm_by_remote_code(saved):
    folder, _, _, _ = saved
    arguments = ["--model_name_or_path", folder / "vlm", "--dataset_name", folder / "data"]
    run_without_the_package(
        TRL_SFT_SCRIPT, *arguments, "--output_dir", folder / "trl-sft", *TRAINING_ARGUMENTS, cwd=folder
    )
    assert_trained_and_hub_native(folder / "vlm", folder / "trl-sft")


@pytest.mark.slow
def test_sft_vlm_calls_train_the_vlm_by_remote_code(saved):
    folder, _, _, _ = saved
    arguments = ["--model_name_or_path", folder / "vlm", "--dataset_name", folder / "data"]
    run_without_the_package(
        SFT_VLM_CALLS, *arguments, "--output_dir", folder / "sft-vlm", *TRAINING_ARGUMENTS, cwd=folder
    )
    assert_trained_and_hub_native(folder / "vlm", folder / "sft-vlm")
