"""SpatialBoost stage 2, visual instruction tuning: train the projector and the LLM of the stage-1 VLM.

SpatialBoost: https://arxiv.org/abs/2603.22057. Starts from stage 1's output (folder or Hub id); the encoder stays
frozen. Data: multi-view VQA (2, 4, 8 views) plus single-view instruction data, concatenated from `dataset_names`.
The output folder (or Hub repo) is stage 3's starting point.

    accelerate launch --config_file recipes/accelerate_configs/deepspeed_zero3.yaml recipes/stage2.py \
        --config recipes/configs/dinov3-vitl16-qwen2-7b/stage2.yaml

    # LoRA on the LM instead of the whole LM (TRL's ModelConfig options; the projector still trains in full):
    accelerate launch --config_file recipes/accelerate_configs/multi_gpu.yaml recipes/stage2.py \
        --config recipes/configs/dinov3-vitl16-qwen2-7b/stage2.yaml --use_peft --lora_r 128 --lora_alpha 256

    # offline, CPU, minutes (after stage 1 of the tiny set):
    python recipes/stage2.py --config recipes/configs/tiny/stage2.yaml

Any option of the YAML can be overridden on the command line (`--model_name_or_path org/vlm-stage1`). With
`--use_peft`, `--lora_target_modules` names linear layers of the LM (default: all of them) and never reaches the
encoder; the adapter is saved under `output_dir/adapter` and merged into the LM of the VLM saved in `output_dir`.
"""

from trl import ModelConfig

from spatialboost.cli import run_recipe
from spatialboost.training import (
    SpatialBoostDataArguments,
    SpatialBoostSFTConfig,
    SpatialBoostSFTTrainer,
    freeze_for_stage,
    load_previous_stage,
    lora_config_for_stage,
    save_stage,
    training_dataset,
)


# What the command line and the YAML configure, in the order `main` takes them.
ARGUMENTS = (ModelConfig, SpatialBoostDataArguments, SpatialBoostSFTConfig)


def main(
    model_args: ModelConfig, data_args: SpatialBoostDataArguments, training_args: SpatialBoostSFTConfig
) -> SpatialBoostSFTTrainer:
    model, processor = load_previous_stage(model_args)
    freeze_for_stage(model, stage=2)
    peft_config = lora_config_for_stage(model_args, model, stage=2)  # with --use_peft: LoRA on the LM only
    dataset, report = training_dataset(data_args, processor, training_args)

    trainer = SpatialBoostSFTTrainer(
        model=model, args=training_args, train_dataset=dataset, processing_class=processor, peft_config=peft_config
    )
    trainable = sum(parameter.requires_grad for parameter in trainer.model.parameters())
    print(f"Stage 2: {len(dataset)} rows ({len(report.bad_rows)} skipped); training {trainable} tensors.")
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)

    save_stage(trainer, stage=2, dataset_names=data_args.dataset_names, model_args=model_args)  # stage 3 starts here
    trainer.end()
    return trainer


if __name__ == "__main__":
    run_recipe(main, ARGUMENTS)  # TRL's parser (--config YAML, overrides); errors in one line, --debug: traceback
