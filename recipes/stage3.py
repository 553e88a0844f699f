"""SpatialBoost stage 3, spatial injection: train only Attn⁺ and a, then publish the boosted encoder alone.

SpatialBoost: https://arxiv.org/abs/2603.22057. Starts from stage 2's output (folder or Hub id). Everything is frozen
except the encoder's second attention branches `Attn⁺` and mix logits `a` (and the projector with
`--train_projector`, since the paper does not say). `a` has its own learning rate (`mix_logit_learning_rate`) and no
weight decay. Data: multi-turn spatial reasoning, single- and multi-view. At the end the boosted encoder is saved
alone per the Hub contract (config with auto_map, weights, remote code, preprocessor config, model card naming the
data and the three stages) to `encoder_output_dir`, and pushed to `encoder_hub_model_id` when given.

    accelerate launch --config_file recipes/accelerate_configs/multi_gpu.yaml recipes/stage3.py \
        --config recipes/configs/dinov3-vitl16-qwen2-7b/stage3.yaml

    # offline, CPU, minutes (after stage 2 of the tiny set); on 2 CPU processes (README, "Several processes"):
    python recipes/stage3.py --config recipes/configs/tiny/stage3.yaml
    torchrun --nproc-per-node 2 recipes/stage3.py --config recipes/configs/tiny/stage3.yaml --use_cpu true \
        --per_device_train_batch_size 2

Any option of the YAML can be overridden on the command line (`--mix_logit_learning_rate 1e-3`).
"""

from dataclasses import dataclass, field

from trl import ModelConfig

from spatialboost.cli import run_recipe
from spatialboost.training import (
    SpatialBoostDataArguments,
    SpatialBoostSFTConfig,
    SpatialBoostSFTTrainer,
    freeze_for_stage,
    load_previous_stage,
    lora_config_for_stage,
    save_boosted_encoder,
    save_stage,
    training_dataset,
)
from spatialboost.vlm import load_spatialboost_vlm


@dataclass
class Stage3Arguments:
    """What trains, and where the boosted encoder goes (the starting VLM is `--model_name_or_path`)."""

    encoder_output_dir: str = field(metadata={"help": "Folder for the boosted encoder alone (Hub contract)."})
    encoder_hub_model_id: str | None = field(default=None, metadata={"help": "Also push the encoder to this repo."})
    train_projector: bool = field(default=False, metadata={"help": "Also train the projector (paper is ambiguous)."})


# What the command line and the YAML configure, in the order `main` takes them.
ARGUMENTS = (Stage3Arguments, ModelConfig, SpatialBoostDataArguments, SpatialBoostSFTConfig)


def main(
    stage_args: Stage3Arguments,
    model_args: ModelConfig,
    data_args: SpatialBoostDataArguments,
    training_args: SpatialBoostSFTConfig,
) -> SpatialBoostSFTTrainer:
    model, processor = load_previous_stage(model_args)
    freeze_for_stage(model, stage=3, train_projector=stage_args.train_projector)
    peft_config = lora_config_for_stage(model_args, model, stage=3)  # None; a clear error with --use_peft
    dataset, report = training_dataset(data_args, processor, training_args)

    trainer = SpatialBoostSFTTrainer(
        model=model, args=training_args, train_dataset=dataset, processing_class=processor, peft_config=peft_config
    )
    trainable = sum(parameter.requires_grad for parameter in trainer.model.parameters())
    print(f"Stage 3: {len(dataset)} rows ({len(report.bad_rows)} skipped); training {trainable} tensors.")
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)

    save_stage(trainer, stage=3, dataset_names=data_args.dataset_names)  # the whole VLM, to evaluate or continue
    if trainer.is_world_process_zero():
        # Read back from the saved VLM: under FSDP or ZeRO-3 the in-memory weights are sharded across processes.
        trained, processor = load_spatialboost_vlm(training_args.output_dir)
        mean_alpha = {layer: round(alpha, 4) for layer, alpha in trained.vision_tower.mean_alpha().items()}
        print(f"Mean α per boosted layer (0.5 at conversion): {mean_alpha}")
        folder = save_boosted_encoder(
            trained,
            processor,
            stage_args.encoder_output_dir,
            push_to_hub=stage_args.encoder_hub_model_id,
            private=training_args.hub_private_repo,
        )
        print(f"Boosted encoder saved to {folder}.")
        if stage_args.encoder_hub_model_id:
            print(f"Pushed to https://huggingface.co/{stage_args.encoder_hub_model_id}.")
    trainer.end()
    return trainer


if __name__ == "__main__":
    run_recipe(main, ARGUMENTS)  # TRL's parser (--config YAML, overrides); errors in one line, --debug: traceback
