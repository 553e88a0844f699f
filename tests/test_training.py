"""Training stages: freezing (every trainable tensor moves, every frozen one is bit-identical), the optimizer group of
`a`, up-front validation of bad rows, resume from a checkpoint, and export of the boosted encoder.

Tiny random-weight models built in code (spatialboost.tiny); a few real `SpatialBoostSFTTrainer` steps on CPU.
"""

import pytest
import torch
from datasets import Dataset
from transformers import AutoModel, TrainerCallback
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from spatialboost.tiny import FEATURES, build_tokenizer, dataset_texts, tiny_dataset, tiny_vlm
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
from spatialboost.vlm import image_tokens_per_image


@pytest.fixture(scope="module")
def dataset():
    return tiny_dataset(8, views=(1, 2), image_size=32)


@pytest.fixture(scope="module")
def tokenizer(dataset):
    return build_tokenizer(dataset_texts(dataset))


def sft_config(output_dir, **overrides) -> SpatialBoostSFTConfig:
    """A deterministic CPU configuration for a few steps."""
    options = {
        "output_dir": str(output_dir),
        "max_steps": 3,
        "per_device_train_batch_size": 2,
        "learning_rate": 1e-2,
        "weight_decay": 0.1,
        "mix_logit_learning_rate": 5e-2,
        "lr_scheduler_type": "constant",
        "activation_checkpointing": False,
        "max_length": None,
        "save_strategy": "no",
        "report_to": "none",
        "logging_steps": 1,
        "use_cpu": True,
        "seed": 0,
        "data_seed": 0,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }
    return SpatialBoostSFTConfig(**{**options, **overrides})


def trainable_modules(model) -> dict[str, str]:
    """Which part of the VLM each parameter belongs to."""

    def part(name):
        if ".attn_plus." in name:
            return "attn_plus"
        if name.startswith("model.vision_tower."):
            return "encoder"
        if name.startswith("model.multi_modal_projector."):
            return "projector"
        return "llm"

    return {name: part(name) for name, _ in model.named_parameters()}


@pytest.mark.parametrize(
    ("stage", "train_projector", "trained_parts", "family"),
    [
        (1, False, {"projector"}, "dinov3_vit"),
        (2, False, {"projector", "llm"}, "dinov3_vit"),
        (3, False, {"attn_plus"}, "dinov3_vit"),
        (3, True, {"attn_plus", "projector"}, "dinov3_vit"),
        (3, False, {"attn_plus"}, "siglip"),
    ],
)
def test_each_stage_trains_exactly_its_parameters(
    tmp_path, dataset, tokenizer, stage, train_projector, trained_parts, family
):
    model, processor = tiny_vlm(tokenizer, family=family)
    trainable = freeze_for_stage(model, stage, train_projector=train_projector)
    parts = trainable_modules(model)
    assert {parts[name] for name in trainable} == trained_parts
    assert set(trainable) == {name for name, part in parts.items() if part in trained_parts}
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}

    trainer = SpatialBoostSFTTrainer(
        model=model, args=sft_config(tmp_path), train_dataset=dataset, processing_class=processor
    )
    trainer.train()

    for name, parameter in model.named_parameters():
        if name in trainable:
            assert not torch.equal(parameter, before[name]), f"{name} should have been trained"
        else:
            assert torch.equal(parameter, before[name]), f"{name} should be frozen"


def test_mix_logits_have_their_own_learning_rate_and_no_weight_decay(tmp_path, dataset, tokenizer):
    model, processor = tiny_vlm(tokenizer)
    freeze_for_stage(model, 3)
    trainer = SpatialBoostSFTTrainer(
        model=model, args=sft_config(tmp_path), train_dataset=dataset, processing_class=processor
    )
    optimizer = trainer.create_optimizer()
    mix_logits = {id(p) for p in model.model.vision_tower.mix_logits().values()}
    groups = {frozenset(id(p) for p in group["params"]): group for group in optimizer.param_groups}
    mix_group = groups[frozenset(mix_logits)]
    assert (mix_group["lr"], mix_group["weight_decay"]) == (5e-2, 0.0)
    others = [group for params, group in groups.items() if not params & mix_logits]
    assert {group["lr"] for group in others} == {1e-2}
    assert {group["weight_decay"] for group in others} == {0.1, 0.0}  # weights decayed, biases not
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert set().union(*groups) == trainable and sum(len(params) for params in groups) == len(trainable)


def test_activation_checkpointing_gives_the_same_stage3_gradients(dataset, tokenizer):
    model, processor = tiny_vlm(tokenizer)
    freeze_for_stage(model, 3)
    model.train()
    with torch.no_grad():  # Attn⁺ away from Attn, so that a has a gradient too
        for name, parameter in model.named_parameters():
            if ".attn_plus." in name:
                parameter.add_(0.05 * torch.randn_like(parameter))
    batch = DataCollatorForVisionLanguageModeling(processor, assistant_only_loss=True)([dict(dataset[1])])

    def gradients():
        model.zero_grad()
        model(**batch, use_cache=False).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}

    plain = gradients()
    model.activation_checkpointing_enable()
    checkpointed_layers = [
        name for name, module in model.named_modules() if getattr(module, "gradient_checkpointing", False)
    ]
    assert any(name.startswith("model.vision_tower.") for name in checkpointed_layers)
    assert any(name.startswith("model.language_model.") for name in checkpointed_layers)
    checkpointed = gradients()
    for name, gradient in plain.items():
        assert gradient.abs().sum() > 0, name
        torch.testing.assert_close(checkpointed[name], gradient, rtol=1e-5, atol=1e-7)


def bad_rows_dataset(dataset: Dataset) -> Dataset:
    """Rows 0 and 6 are fine; rows 1-5 each have one problem."""
    single, double = dataset[0], dataset[1]  # 1 and 2 views
    missing_image = {**double, "images": [None, None]}
    mismatch = {**single, "images": single["images"] * 2}  # two images for one placeholder
    empty = {**single, "images": [], "messages": []}
    no_answer = {**single, "messages": [message for message in single["messages"] if message["role"] == "user"]}
    # The same images, many more turns after the first (which holds the placeholders).
    long_row = {**double, "messages": double["messages"][:2] + double["messages"][2:] * 4}
    rows = [single, missing_image, mismatch, empty, no_answer, long_row, double]
    return Dataset.from_list(rows, features=FEATURES)


def test_validation_names_the_bad_rows_before_training(dataset, tokenizer):
    _, processor = tiny_vlm(tokenizer)
    bad = bad_rows_dataset(dataset)
    with pytest.raises(ValueError) as error:
        validate_dataset(bad, processor, max_length=1024)
    message = str(error.value)
    assert "5 of 7 rows are bad" in message
    assert "row 1: missing image: images [0, 1] are empty" in message
    assert "row 2: image mismatch: 1 image placeholders, 2 images" in message
    assert "row 3: empty conversation: no assistant answer to train on\n" in message
    assert "row 4: empty conversation: no assistant answer to train on\n" in message
    assert "row 5: too long:" in message and "> max_length 1024" in message
    assert "row 0" not in message and "row 6" not in message


def test_validation_skips_and_counts_the_bad_rows(dataset, tokenizer):
    _, processor = tiny_vlm(tokenizer)
    bad = bad_rows_dataset(dataset)
    kept, report = validate_dataset(bad, processor, max_length=1024, on_bad_rows="skip")
    assert len(kept) == 2 and kept["sample_id"] == [bad[0]["sample_id"], bad[6]["sample_id"]]
    assert report.counts == {"missing image": 1, "image mismatch": 1, "empty conversation": 2, "too long": 1}
    _, report = validate_dataset(bad, processor, max_length=None, on_bad_rows="skip")
    assert "too long" not in report.counts


def test_validation_length_is_the_collated_length(dataset, tokenizer):
    """The up-front length (text tokens + patch tokens per image) is exactly what the collator produces."""
    _, processor = tiny_vlm(tokenizer)
    row = dataset[1]
    length = DataCollatorForVisionLanguageModeling(processor)([dict(row)])["input_ids"].shape[1]
    one = Dataset.from_list([row], features=FEATURES)
    validate_dataset(one, processor, max_length=length)  # fits exactly
    with pytest.raises(ValueError, match=f"too long: {length} tokens > max_length {length - 1}"):
        validate_dataset(one, processor, max_length=length - 1)
    assert image_tokens_per_image(processor) == 4


class StopAt(TrainerCallback):
    """Kills the run (an exception, as a crash would) once `step` is reached."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"killed at step {self.step}")


class StepCounter(TrainerCallback):
    """Records the optimizer steps a run takes."""

    def __init__(self):
        self.steps = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def test_a_killed_stage_resumes_from_its_checkpoint_to_the_same_weights(tmp_path, dataset, tokenizer):
    def run(output_dir, callbacks=(), resume=None):
        model, processor = tiny_vlm(tokenizer)
        freeze_for_stage(model, 3, train_projector=True)
        args = sft_config(output_dir, max_steps=4, save_strategy="steps", save_steps=2, lr_scheduler_type="cosine")
        trainer = SpatialBoostSFTTrainer(
            model=model, args=args, train_dataset=dataset, processing_class=processor, callbacks=list(callbacks)
        )
        trainer.train(resume_from_checkpoint=resume)
        return model

    uninterrupted = run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b", callbacks=[StopAt(3)])
    assert not (tmp_path / "b" / "checkpoint-4").exists()
    steps = StepCounter()
    resumed = run(tmp_path / "b", callbacks=[steps], resume=str(tmp_path / "b" / "checkpoint-2"))
    assert steps.steps == [3, 4]  # it resumed: steps 1 and 2 came from the checkpoint
    initial, _ = tiny_vlm(tokenizer)
    moved = 0
    for (name, parameter), (_, reference), (_, start) in zip(
        resumed.named_parameters(), uninterrupted.named_parameters(), initial.named_parameters(), strict=True
    ):
        torch.testing.assert_close(parameter, reference, rtol=0, atol=0, msg=lambda m, n=name: f"{n}: {m}")
        moved += not torch.equal(parameter, start)
    assert moved > 0  # the comparison is between trained weights


def test_stage3_encoder_export_reloads_and_equals_the_vision_tower(tmp_path, dataset, tokenizer):
    model, processor = tiny_vlm(tokenizer)
    trainable = freeze_for_stage(model, 3)
    SpatialBoostSFTTrainer(
        model=model, args=sft_config(tmp_path / "run"), train_dataset=dataset, processing_class=processor
    ).train()
    record_stage(model, 1, ["org/captions"], freeze_for_stage(model, 1))
    record_stage(model, 3, ["org/spatialboost-multiturn"], trainable)
    folder = save_boosted_encoder(model, processor, tmp_path / "encoder")

    encoder = AutoModel.from_pretrained(folder).eval()
    tower = model.model.vision_tower.eval()
    assert type(encoder) is type(tower)
    for (name, parameter), (_, reference) in zip(encoder.named_parameters(), tower.named_parameters(), strict=True):
        assert torch.equal(parameter, reference), name
    assert any(alpha != 0.5 for alpha in encoder.mean_alpha().values())  # trained, not freshly converted
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(encoder(pixel_values).last_hidden_state, tower(pixel_values).last_hidden_state)
    card = (folder / "README.md").read_text()
    assert "- org/captions" in card and "- org/spatialboost-multiturn" in card
    assert "| 1 feature alignment | org/captions | model.multi_modal_projector |" in card
    assert "| 3 spatial injection | org/spatialboost-multiturn | Attn⁺ and a |" in card
    assert {path.name for path in folder.iterdir()} >= {
        "config.json",
        "model.safetensors",
        "modeling_spatialboost.py",
        "configuration_spatialboost.py",
        "preprocessor_config.json",
        "README.md",
    }


def test_training_data_loads_parquet_folders_and_concatenates_them(tmp_path, dataset):
    for name, rows in (("single", dataset.select(range(3))), ("multi", dataset.select(range(3, 8)))):
        rows.to_parquet(str(tmp_path / name / "data" / "train-00000-of-00001.parquet"))
    args = SpatialBoostDataArguments(dataset_names=[str(tmp_path / "single"), str(tmp_path / "multi")])
    loaded = load_training_data(args)
    assert loaded.column_names == ["images", "messages"] and len(loaded) == 8
    assert loaded[4]["messages"] == dataset[4]["messages"]
    assert [image.size for image in loaded[1]["images"]] == [image.size for image in dataset[1]["images"]]
    dataset.select_columns(["messages"]).to_parquet(str(tmp_path / "no-images" / "train.parquet"))
    with pytest.raises(ValueError, match=r"has no \['images'\] column"):
        load_training_data(SpatialBoostDataArguments(dataset_names=[str(tmp_path / "no-images")]))
