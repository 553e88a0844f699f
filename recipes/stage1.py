"""SpatialBoost stage 1, feature alignment: assemble the VLM and train its projector on image–caption data.

SpatialBoost: https://arxiv.org/abs/2603.22057. The VLM (`spatialboost.vlm`) is a SpatialBoost encoder (a base
DINOv3 ViT / SigLIP checkpoint is converted on the fly), a new 2-layer GELU projector and any causal LM. Only the
projector trains; the encoder and the LM are frozen. The output folder (or Hub repo) is stage 2's starting point.

    accelerate launch --config_file recipes/accelerate_configs/multi_gpu.yaml recipes/stage1.py \
        --config recipes/configs/dinov3-vitl16-qwen2-7b/stage1.yaml

    # offline, CPU, minutes (after `python -m spatialboost.tiny --output-dir tiny-spatialboost`):
    python recipes/stage1.py --config recipes/configs/tiny/stage1.yaml

Any option of the YAML can be overridden on the command line (`--learning_rate 2e-3`).
"""

from dataclasses import dataclass, field

import torch
from trl import TrlParser

from spatialboost.training import (
    SpatialBoostDataArguments,
    SpatialBoostSFTConfig,
    SpatialBoostSFTTrainer,
    freeze_for_stage,
    load_training_data,
    record_stage,
    validate_dataset,
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
    dtype: str | None = field(
        default=None, metadata={"help": "Load dtype: float32, bfloat16 (default: checkpoint's)."}
    )
    attn_implementation: str | None = field(default=None, metadata={"help": "sdpa, eager or flash_attention_2."})


def main(model_args: Stage1Arguments, data_args: SpatialBoostDataArguments, training_args: SpatialBoostSFTConfig):
    model, processor = build_spatialboost_vlm(
        model_args.encoder_name_or_path,
        model_args.llm_name_or_path,
        tokenizer=model_args.tokenizer_name_or_path,
        boost_layers=model_args.boost_layers,
        dtype=getattr(torch, model_args.dtype) if model_args.dtype else None,
        attn_implementation=model_args.attn_implementation,
        encoder_revision=model_args.encoder_revision,
        llm_revision=model_args.llm_revision,
        seed=training_args.seed,
    )
    trainable = freeze_for_stage(model, stage=1)

    # Every bad row is found (and named, or skipped and counted) before any training time is spent.
    dataset, report = validate_dataset(
        load_training_data(data_args),
        processor,
        training_args.max_length,
        on_bad_rows=data_args.on_bad_rows,
        num_proc=data_args.validation_num_proc,
    )
    print(f"Stage 1: {len(dataset)} rows ({len(report.bad_rows)} skipped); training {len(trainable)} tensors.")

    trainer = SpatialBoostSFTTrainer(
        model=model, args=training_args, train_dataset=dataset, processing_class=processor
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)

    record_stage(model, stage=1, datasets=data_args.dataset_names, trained=trainable)
    trainer.save_model(training_args.output_dir)  # the VLM and its processor: stage 2's model_name_or_path
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=data_args.dataset_names)


if __name__ == "__main__":
    parser = TrlParser((Stage1Arguments, SpatialBoostDataArguments, SpatialBoostSFTConfig))
    main(*parser.parse_args_and_config())
