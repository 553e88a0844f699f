"""The SpatialBoost VLM: assembly, prefix-token stripping, multi-view processing, loss mask, save and reload.

Tiny random-weight models built in code (spatialboost.tiny); nothing is downloaded.
"""

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedTokenizerFast, SiglipVisionConfig
from trl.chat_template_utils import has_generation_markers, is_chat_template_stop_token_trained
from trl.data_utils import prepare_multimodal_messages
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from spatialboost.tiny import build_tokenizer, dataset_texts, tiny_dataset, tiny_encoder, tiny_llm, tiny_vlm
from spatialboost.vlm import (
    SpatialBoostVLMConfig,
    SpatialBoostVLMForConditionalGeneration,
    build_spatialboost_vlm,
    image_tokens_per_image,
    load_spatialboost_vlm,
    num_prefix_tokens_of,
)


@pytest.fixture(scope="module")
def dataset():
    return tiny_dataset(8, views=(1, 2, 4, 8), image_size=40)


@pytest.fixture(scope="module")
def tokenizer(dataset):
    return build_tokenizer(dataset_texts(dataset))


def collate(processor, rows, assistant_only_loss=True):
    """The batch SFTTrainer builds: TRL's own vision collator, with the processor's chat template."""
    collator = DataCollatorForVisionLanguageModeling(processor=processor, assistant_only_loss=assistant_only_loss)
    return collator([{"images": row["images"], "messages": row["messages"]} for row in rows])


def test_loss_mask_covers_exactly_the_assistant_answers_of_a_12_turn_sample(dataset, tokenizer):
    model, processor = tiny_vlm(tokenizer)
    row = dataset[1]  # 2 views, 12 question–answer turns
    answers = [message["content"][0]["text"] for message in row["messages"] if message["role"] == "assistant"]
    assert len(answers) == 12
    batch = collate(processor, [row])
    labels, input_ids = batch["labels"][0], batch["input_ids"][0]
    trained = labels != -100
    # The trained positions form exactly 12 contiguous spans, each decoding to one answer and its end-of-turn token.
    edges = torch.diff(trained.int(), prepend=torch.zeros(1, dtype=torch.int)).tolist()
    starts = [i for i, edge in enumerate(edges) if edge == 1]
    ends = [i for i, edge in enumerate(edges) if edge == -1] + ([len(trained)] if trained[-1] else [])
    spans = [tokenizer.decode(input_ids[start:end]) for start, end in zip(starts, ends, strict=True)]
    assert spans == [f"{answer}<|im_end|>" for answer in answers]
    # Nothing else: no image token, no question, no role header is trained.
    assert not trained[input_ids == processor.image_token_id].any()
    untrained_text = tokenizer.decode(input_ids[~trained])
    for message in row["messages"]:
        if message["role"] == "user":
            assert message["content"][-1]["text"] in untrained_text
    assert untrained_text.count("<|im_start|>assistant\n") == 12
    assert torch.equal(labels[trained], input_ids[trained])


def test_trl_sees_generation_markers_and_a_trained_stop_token(tokenizer):
    """TRL's own checks: it keeps this template (no fallback) and finds the end-of-turn token inside the mask."""
    _, processor = tiny_vlm(tokenizer)
    assert has_generation_markers(processor.chat_template)
    assert is_chat_template_stop_token_trained(processor)


def test_loss_mask_without_generation_markers_would_train_on_everything(dataset, tokenizer):
    """The mask test above can fail: the same sample without assistant-only loss trains on the questions too."""
    _, processor = tiny_vlm(tokenizer)
    batch = collate(processor, [dataset[1]], assistant_only_loss=False)
    assert (batch["labels"] != -100).sum() == batch["attention_mask"].sum()


@pytest.mark.parametrize("views", [1, 2, 4, 8])
def test_several_images_per_sample_expand_to_their_patch_tokens(dataset, tokenizer, views):
    model, processor = tiny_vlm(tokenizer, image_size=32)
    row = next(row for row in dataset if len(row["images"]) == views)
    batch = collate(processor, [row])
    assert batch["pixel_values"].shape == (views, 3, 32, 32)
    patches = (32 // 16) ** 2
    assert image_tokens_per_image(processor) == patches
    assert (batch["input_ids"] == processor.image_token_id).sum() == views * patches
    with torch.no_grad():
        assert torch.isfinite(model(**batch).loss)


@pytest.mark.parametrize("family", ["dinov3_vit", "siglip"])
def test_image_features_are_the_projected_last_layer_patch_tokens(tokenizer, family):
    model, processor = tiny_vlm(tokenizer, family=family)
    model.eval()  # DINOv3 jitters its RoPE coordinates in training mode
    pixel_values = torch.randn(3, 3, 32, 32)
    encoder = model.model.vision_tower
    prefix = 1 + encoder.config.num_register_tokens if family == "dinov3_vit" else 0
    assert model.config.num_prefix_tokens == prefix
    with torch.no_grad():
        features = torch.stack(model.model.get_image_features(pixel_values).pooler_output)
        expected = model.model.multi_modal_projector(encoder(pixel_values).last_hidden_state[:, prefix:])
    assert features.shape == (3, 4, model.config.text_config.hidden_size)  # 4 patches, no CLS / registers
    torch.testing.assert_close(features, expected, rtol=0, atol=0)


def test_encoder_stays_in_eval_mode_and_still_gets_gradients(tokenizer):
    model, _ = tiny_vlm(tokenizer)
    model.train()
    assert model.training and model.model.language_model.training and not model.model.vision_tower.training
    pixel_values = torch.randn(2, 3, 32, 32)
    first, second = (torch.stack(model.model.get_image_features(pixel_values).pooler_output) for _ in range(2))
    assert torch.equal(first, second)  # no random RoPE rescaling of DINOv3 in training mode
    first.sum().backward()
    assert all(
        parameter.grad is not None and parameter.grad.abs().sum() > 0
        for name, parameter in model.named_parameters()
        if ".attn_plus." in name and not name.endswith("mix_logit")
    )


def test_naflex_and_non_spatialboost_encoders_are_rejected():
    with pytest.raises(ValueError, match="NaFlex"):
        num_prefix_tokens_of(type("C", (), {"model_type": "spatialboost_siglip2_vision"})())
    with pytest.raises(ValueError, match="must be a SpatialBoost encoder"):
        SpatialBoostVLMConfig(vision_config=SiglipVisionConfig(), text_config={"model_type": "qwen2"})


def test_config_rejects_a_wrong_prefix_count_or_feature_selection(tokenizer):
    model, _ = tiny_vlm(tokenizer)
    config = model.config.to_dict()
    with pytest.raises(ValueError, match="num_prefix_tokens=1"):
        SpatialBoostVLMConfig.from_dict({**config, "num_prefix_tokens": 1})
    with pytest.raises(ValueError, match="vision_feature_select_strategy"):
        SpatialBoostVLMConfig.from_dict({**config, "vision_feature_select_strategy": "default"})


def test_build_from_checkpoint_folders_converts_the_base_encoder(tmp_path, tokenizer):
    torch.manual_seed(0)
    base = tiny_encoder().eval()
    base.save_pretrained(tmp_path / "encoder")
    tiny_llm(len(tokenizer)).save_pretrained(tmp_path / "llm")
    tokenizer.save_pretrained(tmp_path / "llm")
    model, processor = build_spatialboost_vlm(str(tmp_path / "encoder"), str(tmp_path / "llm"))
    encoder = model.model.vision_tower
    assert encoder.config.model_type == "spatialboost_dinov3_vit"
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():  # converted on the fly: computes exactly what the base did
        torch.testing.assert_close(encoder(pixel_values).last_hidden_state, base(pixel_values).last_hidden_state)
    assert processor.image_token_id == model.config.image_token_id == tokenizer.convert_tokens_to_ids("<image>")

    encoder.save_pretrained(tmp_path / "spatialboost-encoder")  # a SpatialBoost folder loads as it is
    again, _ = build_spatialboost_vlm(str(tmp_path / "spatialboost-encoder"), str(tmp_path / "llm"))
    assert type(again.model.vision_tower) is type(encoder)
    with pytest.raises(ValueError, match="already a SpatialBoost encoder"):
        build_spatialboost_vlm(str(tmp_path / "spatialboost-encoder"), str(tmp_path / "llm"), boost_layers=[0])


def test_image_token_is_added_and_embeddings_resized_when_the_tokenizer_lacks_it(tokenizer):
    backend = Tokenizer(models.WordLevel({"<unk>": 0, "hello": 1, "<|im_end|>": 2}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    without_image = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", unk_token="<unk>")
    encoder = tiny_vlm(tokenizer)[0].model.vision_tower
    model, processor = build_spatialboost_vlm(encoder, tiny_llm(vocab_size=3), without_image)
    assert len(without_image) == 4 and processor.image_token_id == model.config.image_token_id == 3
    assert model.get_input_embeddings().weight.shape[0] == 4 and model.lm_head.weight.shape[0] == 4


def test_saved_vlm_reloads_with_equal_outputs(tmp_path, dataset, tokenizer):
    model, processor = tiny_vlm(tokenizer)
    with torch.no_grad():  # move Attn⁺ and a off their initial values so a lost weight would show
        for name, parameter in model.named_parameters():
            if ".attn_plus." in name:
                parameter.add_(0.1 * torch.randn_like(parameter))
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    batch = collate(processor, [dataset[0], dataset[1]])

    for reloaded in (
        AutoModelForImageTextToText.from_pretrained(tmp_path),
        load_spatialboost_vlm(str(tmp_path))[0],
    ):
        assert type(reloaded) is SpatialBoostVLMForConditionalGeneration
        reloaded_batch = collate(AutoProcessor.from_pretrained(tmp_path), [dataset[0], dataset[1]])
        for key in batch:
            assert torch.equal(batch[key], reloaded_batch[key]), key
        model.eval(), reloaded.eval()
        with torch.no_grad():
            torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits, rtol=0, atol=0)


def test_prepare_multimodal_messages_keeps_image_order(dataset):
    """Images are referenced in order: the i-th image part of the conversation gets the i-th image."""
    row = dataset[3]  # 8 views
    messages = prepare_multimodal_messages(row["messages"], images=row["images"])
    parts = [part["image"] for part in messages[0]["content"] if part["type"] == "image"]
    assert parts == row["images"]
