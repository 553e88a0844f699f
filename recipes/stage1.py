"""SpatialBoost stage 1, feature alignment: assemble the VLM and train its projector on image–caption data.

SpatialBoost: https://arxiv.org/abs/2603.22057. The VLM (`spatialboost.vlm`) is a SpatialBoost encoder (a base
DINOv3 ViT / SigLIP checkpoint is converted on the fly), a new 2-layer GELU projector and any causal LM. Only the
projector trains; the encoder and the LM are frozen. The output folder (or Hub repo) is stage 2's starting point.

    accelerate launch --config_file recipes/accelerate_configs/multi_gpu.yaml recipes/stage1.py \
        --config recipes/configs/dinov3-vitl16-qwen2-7b/stage1.yaml

    # offline, CPU, minutes (after `python -m spatialboost.tiny --output-dir tiny-spatialboost`):
    python recipes/stage1.py --config recipes/configs/tiny/stage1.yaml

Any option of the YAML can be overridden on the command line (`--learning_rate 2e-3`). TRL's `ModelConfig` gives
`--dtype` and `--attn_implementation` (for the encoder and the LM); its `--model_name_or_path` is for stages 2 and 3,
and its LoRA options (`--use_peft`) for stage 2.
"""

from dataclasses import dataclass, field

from trl import ModelConfig

from spatialboost.cli import run_recipe
from spatialboost.training import (
    SpatialBoostDataArguments,
    SpatialBoostSFTConfig,
    SpatialBoostSFTTrainer,
    freeze_for_stage,
    from_pretrained_kwargs,
    lora_config_for_stage,
    save_stage,
    training_dataset,
)
from spatialboost.vlm import build_spatialboost_vlm


@dataclass
class Stage1Arguments:
    """Where the VLM's parts come from."""

    encoder_name_or_path: str = field(
        metadata={"help": "SpatialBoost encoder, or base DINOv3 ViT / SigLIP checkpoint (converted), id or folder."}
    )
    llm_name_or_path: str = field(metadata={"help": "Causal LM id or folder (e.g. Qwen/Qwen2-7B-Instruct)."})
    tokenizer_name_or_path: str | None = field(default=None, metadata={"help": "Default: the LM's tokenizer."})
    boost_layers: list[int] | None = field(
        default=None, metadata={"help": "Layers that get a dual-channel attention when converting (default: all)."}
    )
    encoder_revision: str | None = field(default=None, metadata={"help": "Encoder revision (pin a commit)."})
    llm_revision: str | None = field(default=None, metadata={"help": "LM and tokenizer revision (pin a commit)."})


# What the command line and the YAML configure, in the order `main` takes them.
ARGUMENTS = (Stage1Arguments, ModelConfig, SpatialBoostDataArguments, SpatialBoostSFTConfig)


def main(
    parts: Stage1Arguments,
    model_args: ModelConfig,
    data_args: SpatialBoostDataArguments,
    training_args: SpatialBoostSFTConfig,
) -> SpatialBoostSFTTrainer:
    if model_args.model_name_or_path is not None:
        raise ValueError(
            "Stage 1 assembles the VLM from --encoder_name_or_path and --llm_name_or_path; --model_name_or_path "
            "is the starting VLM of stages 2 and 3."
        )
    load_kwargs = from_pretrained_kwargs(model_args)
    model, processor = build_spatialboost_vlm(
        parts.encoder_name_or_path,
        parts.llm_name_or_path,
        tokenizer=parts.tokenizer_name_or_path,
        boost_layers=parts.boost_layers,
        dtype=load_kwargs.get("dtype"),
        attn_implementation=load_kwargs.get("attn_implementation"),
        encoder_revision=parts.encoder_revision,
        llm_revision=parts.llm_revision,
        seed=training_args.seed,
    )
    freeze_for_stage(model, stage=1)
    peft_config = lora_config_for_stage(model_args, model, stage=1)  # None; a clear error with --use_peft
    dataset, report = training_dataset(data_args, processor, training_args)

    trainer = SpatialBoostSFTTrainer(
        model=model, args=training_args, train_dataset=dataset, processing_class=processor, peft_config=peft_config
    )
    trainable = sum(parameter.requires_grad for parameter in trainer.model.parameters())
    print(f"Stage 1: {len(dataset)} rows ({len(report.bad_rows)} skipped); training {trainable} tensors.")
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)

    save_stage(trainer, stage=1, dataset_names=data_args.dataset_names)  # stage 2's model_name_or_path
    trainer.end()
    return trainer


if __name__ == "__main__":
    run_recipe(main, ARGUMENTS)  # TRL's parser (--config YAML, overrides); errors in one line, --debug: traceback
