"""SpatialBoost stage 3, spatial injection: train only Attn⁺ and a, then publish the boosted encoder alone.

SpatialBoost: https://arxiv.org/abs/2603.22057. Starts from stage 2's output (folder or Hub id). Everything is frozen
except the encoder's second attention branches `Attn⁺` and mix logits `a` (and the projector with
`--train_projector`, since the paper does not say). `a` has its own learning rate (`mix_logit_learning_rate`) and no
weight decay. Data: multi-turn spatial reasoning, single- and multi-view. At the end the boosted encoder is saved
alone per the Hub contract (config with auto_map, weights, remote code, preprocessor config, model card naming the
data and the three stages) to `encoder_output_dir`, and pushed to `encoder_hub_model_id` when given.

    accelerate launch --config_file recipes/accelerate_configs/multi_gpu.yaml recipes/stage3.py \
        --config recipes/configs/dinov3-vitl16-qwen2-7b/stage3.yaml

    # offline, CPU, minutes (after stage 2 of the tiny set):
    python recipes/stage3.py --config recipes/configs/tiny/stage3.yaml

Any option of the YAML can be overridden on the command line (`--mix_logit_learning_rate 1e-3`).
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
    save_boosted_encoder,
    validate_dataset,
)
from spatialboost.vlm import load_spatialboost_vlm


@dataclass
class Stage3Arguments:
    """Which stage-2 VLM to start from, what trains, and where the boosted encoder goes."""

    model_name_or_path: str = field(metadata={"help": "Stage 2's output folder or Hub repo."})
    encoder_output_dir: str = field(metadata={"help": "Folder for the boosted encoder alone (Hub contract)."})
    encoder_hub_model_id: str | None = field(default=None, metadata={"help": "Also push the encoder to this repo."})
    train_projector: bool = field(default=False, metadata={"help": "Also train the projector (paper is ambiguous)."})
    model_revision: str | None = field(default=None, metadata={"help": "Revision of model_name_or_path."})
    dtype: str | None = field(
        default=None, metadata={"help": "Load dtype: float32, bfloat16 (default: checkpoint's)."}
    )
    attn_implementation: str | None = field(default=None, metadata={"help": "sdpa, eager or flash_attention_2."})


def main(model_args: Stage3Arguments, data_args: SpatialBoostDataArguments, training_args: SpatialBoostSFTConfig):
    load_kwargs = {
        "revision": model_args.model_revision,
        "dtype": getattr(torch, model_args.dtype) if model_args.dtype else None,
        "attn_implementation": model_args.attn_implementation,
    }
    model, processor = load_spatialboost_vlm(
        model_args.model_name_or_path, **{key: value for key, value in load_kwargs.items() if value is not None}
    )
    trainable = freeze_for_stage(model, stage=3, train_projector=model_args.train_projector)

    # Every bad row is found (and named, or skipped and counted) before any training time is spent.
    dataset, report = validate_dataset(
        load_training_data(data_args),
        processor,
        training_args.max_length,
        on_bad_rows=data_args.on_bad_rows,
        num_proc=data_args.validation_num_proc,
    )
    print(f"Stage 3: {len(dataset)} rows ({len(report.bad_rows)} skipped); training {len(trainable)} tensors.")

    trainer = SpatialBoostSFTTrainer(
        model=model, args=training_args, train_dataset=dataset, processing_class=processor
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)

    record_stage(model, stage=3, datasets=data_args.dataset_names, trained=trainable)
    trainer.save_model(training_args.output_dir)  # the whole VLM, to evaluate or continue from
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=data_args.dataset_names)
    if trainer.is_world_process_zero():
        # Read back from the saved VLM: under FSDP or ZeRO-3 the in-memory weights are sharded across processes.
        trained, processor = load_spatialboost_vlm(training_args.output_dir)
        mean_alpha = {layer: round(alpha, 4) for layer, alpha in trained.vision_tower.mean_alpha().items()}
        print(f"Mean α per boosted layer (0.5 at conversion): {mean_alpha}")
        folder = save_boosted_encoder(
            trained,
            processor,
            model_args.encoder_output_dir,
            push_to_hub=model_args.encoder_hub_model_id,
            private=training_args.hub_private_repo,
        )
        print(f"Boosted encoder saved to {folder}.")
        if model_args.encoder_hub_model_id:
            print(f"Pushed to https://huggingface.co/{model_args.encoder_hub_model_id}.")


if __name__ == "__main__":
    parser = TrlParser((Stage3Arguments, SpatialBoostDataArguments, SpatialBoostSFTConfig))
    main(*parser.parse_args_and_config())
