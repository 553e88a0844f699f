"""SpatialBoost stage 2, visual instruction tuning: train the projector and the LLM of the stage-1 VLM.

SpatialBoost: https://arxiv.org/abs/2603.22057. Starts from stage 1's output (folder or Hub id); the encoder stays
frozen. Data: multi-view VQA (2, 4, 8 views) plus single-view instruction data, concatenated from `dataset_names`.
The output folder (or Hub repo) is stage 3's starting point.

    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero3.yaml recipes/stage2.py \
        --config recipes/configs/dinov3-vitl16-qwen2-7b/stage2.yaml

    # offline, CPU, minutes (after stage 1 of the tiny set):
    python recipes/stage2.py --config recipes/configs/tiny/stage2.yaml

Any option of the YAML can be overridden on the command line (`--model_name_or_path org/vlm-stage1`).
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
from spatialboost.vlm import load_spatialboost_vlm


@dataclass
class Stage2Arguments:
    """Which stage-1 VLM to start from."""

    model_name_or_path: str = field(metadata={"help": "Stage 1's output folder or Hub repo."})
    model_revision: str | None = field(default=None, metadata={"help": "Revision of model_name_or_path."})
    dtype: str | None = field(
        default=None, metadata={"help": "Load dtype: float32, bfloat16 (default: checkpoint's)."}
    )
    attn_implementation: str | None = field(default=None, metadata={"help": "sdpa, eager or flash_attention_2."})


def main(model_args: Stage2Arguments, data_args: SpatialBoostDataArguments, training_args: SpatialBoostSFTConfig):
    load_kwargs = {
        "revision": model_args.model_revision,
        "dtype": getattr(torch, model_args.dtype) if model_args.dtype else None,
        "attn_implementation": model_args.attn_implementation,
    }
    model, processor = load_spatialboost_vlm(
        model_args.model_name_or_path, **{key: value for key, value in load_kwargs.items() if value is not None}
    )
    trainable = freeze_for_stage(model, stage=2)

    # Every bad row is found (and named, or skipped and counted) before any training time is spent.
    dataset, report = validate_dataset(
        load_training_data(data_args),
        processor,
        training_args.max_length,
        on_bad_rows=data_args.on_bad_rows,
        num_proc=data_args.validation_num_proc,
    )
    print(f"Stage 2: {len(dataset)} rows ({len(report.bad_rows)} skipped); training {len(trainable)} tensors.")

    trainer = SpatialBoostSFTTrainer(
        model=model, args=training_args, train_dataset=dataset, processing_class=processor
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)

    record_stage(model, stage=2, datasets=data_args.dataset_names, trained=trainable)
    trainer.save_model(training_args.output_dir)  # the VLM and its processor: stage 3's model_name_or_path
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=data_args.dataset_names)


if __name__ == "__main__":
    parser = TrlParser((Stage2Arguments, SpatialBoostDataArguments, SpatialBoostSFTConfig))
    main(*parser.parse_args_and_config())
