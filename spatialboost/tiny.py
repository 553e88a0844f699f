"""Tiny, offline stand-ins for the three-stage recipes: a base encoder, a causal LM, its tokenizer and a dataset.

The machines SpatialBoost is developed on reach package registries only, so `recipes/configs/tiny/` runs on these:
a DINOv3 ViT and a Qwen2 LM with RANDOM weights (they demonstrate the mechanics; they are not trained models), a
byte-level BPE tokenizer trained in-process on the dataset's text, and a dataset with the contract the builders
publish (`images`, `messages` with 12 question–answer turns, ground truth and provenance columns), drawn from
random boxes whose answers are not meant to be right. Point the tiny configs' `dataset_name` at the multi-turn
builder's output folder to train on real synthetic scenes instead.

    python -m spatialboost.tiny --output-dir tiny-spatialboost

writes `encoder-base/` (base checkpoint, converted on the fly by stage 1), `llm/` (LM + tokenizer) and `data/`
(parquet shards that `load_dataset("tiny-spatialboost/data")` reads). SpatialBoost: https://arxiv.org/abs/2603.22057.
"""

from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, Features, Image, List, Value
from PIL import Image as PILImage
from PIL import ImageDraw
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    DINOv3ViTConfig,
    DINOv3ViTImageProcessor,
    DINOv3ViTModel,
    LlavaProcessor,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from modeling_spatialboost import SpatialBoostDinov3ViTModel, SpatialBoostSiglipVisionModel

from .vlm import SpatialBoostVLMForConditionalGeneration, build_spatialboost_vlm


# ChatML control tokens of the chat template, the image placeholder and padding.
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"]
TURN_KINDS = [
    ("pixel", "absolute_depth"),
    ("pixel", "absolute_depth"),
    ("pixel", "relative_depth"),
    ("pixel", "relative_depth"),
    ("pixel", "relative_depth"),
    ("object", "left_right"),
    ("object", "above_below"),
    ("object", "front_behind"),
    ("object", "bounding_cube"),
    ("scene", "distance"),
    ("caption", "caption"),
    ("caption", "caption"),
]
FEATURES = Features(
    {
        "images": List(Image()),
        "messages": List(
            {"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}
        ),
        "turns": List(
            {
                "level": Value("string"),
                "kind": Value("string"),
                "value_m": Value("float64"),
                "unit": Value("string"),
                "tolerance": Value("float64"),
            }
        ),
        "source": Value("string"),
        "sample_id": Value("string"),
    }
)


def tiny_image(rng: np.random.Generator, size: int = 48) -> PILImage.Image:
    """A drawn 'room' (floor, wall, a few boxes) so image processors see a real RGB image."""
    image = PILImage.new("RGB", (size, size), tuple(int(c) for c in rng.integers(150, 230, 3)))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, size * 2 // 3, size, size], fill=tuple(int(c) for c in rng.integers(60, 140, 3)))
    for _ in range(3):
        x, y = rng.integers(0, size - 12, 2)
        draw.rectangle(
            [x, y, x + rng.integers(4, 12), y + rng.integers(4, 12)],
            fill=tuple(int(c) for c in rng.integers(0, 255, 3)),
        )
    return image


def metres(value: float) -> tuple[str, str]:
    """A distance as the contract says it: metres to 3 decimals, centimetres below 0.5 m."""
    return (f"{value * 100:.1f} cm", "cm") if value < 0.5 else (f"{value:.3f} m", "m")


def tiny_turn(kind: str, rng: np.random.Generator, image_size: int) -> tuple[str, str, float | None, str]:
    """One question–answer turn of `kind`: (question, answer, value in metres or None, unit shown)."""
    a, b = rng.choice(["chair", "table", "lamp", "box", "plant", "sofa"], 2, replace=False)
    x, y = (int(v) for v in rng.integers(0, image_size, 2))
    value = float(np.round(rng.uniform(0.2, 6.0), 3))
    yes_no = str(rng.choice(["Yes.", "No."]))
    if kind == "absolute_depth":
        answer, unit = metres(value)
        return f"What is the depth at the point marked at ({x}, {y})?", answer, value, unit
    if kind == "relative_depth":
        return f"Is point A at ({x}, {y}) closer than point B?", yes_no, None, ""
    if kind in ("left_right", "above_below", "front_behind"):
        relation = {"left_right": "left of", "above_below": "above", "front_behind": "in front of"}[kind]
        return f"Is the {a} {relation} the {b}?", yes_no, None, ""
    if kind == "bounding_cube":
        centre = ", ".join(f"{v:.3f}" for v in rng.uniform(-2, 2, 3))
        size = ", ".join(f"{v:.3f}" for v in rng.uniform(0.1, 1, 3))
        return f"What is the 3D bounding cube of the {a}?", f"Centre {centre}, size {size}.", None, ""
    if kind == "distance":
        distance, unit = metres(value)
        return f"How far is the {a} from the {b}?", f"From the earlier answers, about {distance}.", value, unit
    return "Describe the scene.", f"A room with a {a} and a {b} on the floor.", None, ""


def tiny_sample(index: int, num_views: int = 1, image_size: int = 48) -> dict:
    """One row of the dataset contract: `num_views` images and a 12-turn spatial conversation about them."""
    rng = np.random.default_rng(index)
    images = [tiny_image(rng, image_size) for _ in range(num_views)]
    messages, turns = [], []
    for turn_index, (level, kind) in enumerate(TURN_KINDS):
        question, answer, value, unit = tiny_turn(kind, rng, image_size)
        # Every image is referenced, in order, by the first question.
        placeholders = [{"type": "image", "text": None}] * num_views if turn_index == 0 else []
        messages.append({"role": "user", "content": [*placeholders, {"type": "text", "text": question}]})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
        tolerance = None if value is None else 0.1
        turns.append({"level": level, "kind": kind, "value_m": value, "unit": unit, "tolerance": tolerance})
    return {
        "images": images,
        "messages": messages,
        "turns": turns,
        "source": "spatialboost.tiny (random boxes)",
        "sample_id": f"tiny-{index:05d}",
    }


def tiny_dataset(num_samples: int = 32, views: tuple[int, ...] = (1, 2), image_size: int = 48) -> Dataset:
    """`num_samples` rows cycling through `views` images per row (1 single-view; 2, 4, 8 multi-view)."""
    rows = [tiny_sample(i, views[i % len(views)], image_size) for i in range(num_samples)]
    return Dataset.from_list(rows, features=FEATURES)


def build_tokenizer(texts, vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained in-process on `texts`, with the ChatML and `<image>` special tokens."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=["<|im_start|>", "<image>"],
    )


def dataset_texts(dataset: Dataset):
    for messages in dataset["messages"]:
        for message in messages:
            yield message["role"]
            for part in message["content"]:
                if part["type"] == "text":
                    yield part["text"]


def tiny_encoder(image_size: int = 32, num_register_tokens: int = 2, hidden_size: int = 32) -> DINOv3ViTModel:
    """A base DINOv3 ViT (random weights), 16-pixel patches, CLS and register tokens."""
    config = DINOv3ViTConfig(
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        patch_size=16,
        image_size=image_size,
        num_register_tokens=num_register_tokens,
    )
    return DINOv3ViTModel(config)


def tiny_llm(vocab_size: int, hidden_size: int = 32) -> Qwen2ForCausalLM:
    """A Qwen2 causal LM (random weights, untied head, as Qwen2-7B)."""
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
    )
    return Qwen2ForCausalLM(config)


def tiny_vlm(
    tokenizer: PreTrainedTokenizerFast, image_size: int = 32, family: str = "dinov3_vit", seed: int = 0
) -> tuple[SpatialBoostVLMForConditionalGeneration, LlavaProcessor]:
    """A tiny SpatialBoost VLM in memory (RANDOM weights): converted DINOv3 ViT or SigLIP, projector, Qwen2."""
    torch.manual_seed(seed)
    if family == "dinov3_vit":
        encoder = SpatialBoostDinov3ViTModel.from_base(tiny_encoder(image_size=image_size))
    elif family == "siglip":
        config = SiglipVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            patch_size=16,
            image_size=image_size,
        )
        encoder = SpatialBoostSiglipVisionModel.from_base(SiglipVisionModel(config))
    else:
        raise ValueError(f"family must be 'dinov3_vit' or 'siglip', got {family!r}.")
    return build_spatialboost_vlm(encoder, tiny_llm(len(tokenizer)), tokenizer, seed=seed)


def write_tiny_setup(
    output_dir: str | Path,
    num_samples: int = 64,
    image_size: int = 64,
    seed: int = 0,
    tokenizer_dataset: Dataset | None = None,
) -> Path:
    """Writes `encoder-base/`, `llm/` and `data/` under `output_dir` (see the module docstring).

    Args:
        output_dir (`str` or `Path`): Folder to write into.
        num_samples (`int`): Rows of the tiny dataset.
        image_size (`int`): Encoder input side.
        seed (`int`): Seed of the random weights.
        tokenizer_dataset (`Dataset`, *optional*): Conversations to train the tokenizer on (the data the recipes
            will train on, e.g. the multi-turn builder's output: shorter sequences); default the tiny dataset.
    """
    output_dir = Path(output_dir)
    torch.manual_seed(seed)
    dataset = tiny_dataset(num_samples, views=(1, 2, 4))
    tokenizer = build_tokenizer(dataset_texts(tokenizer_dataset if tokenizer_dataset is not None else dataset))
    encoder = tiny_encoder(image_size=image_size)
    encoder.save_pretrained(output_dir / "encoder-base")
    # A real base checkpoint ships its image processor.
    DINOv3ViTImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(
        output_dir / "encoder-base"
    )
    tiny_llm(len(tokenizer)).save_pretrained(output_dir / "llm")
    tokenizer.save_pretrained(output_dir / "llm")
    dataset.to_parquet(str(output_dir / "data" / "train-00000-of-00001.parquet"))
    return output_dir


def main(argv: list[str] | None = None) -> None:
    """`spatialboost-tiny` (parser: `spatialboost/cli.py`)."""
    from .cli import tiny

    tiny(argv)


if __name__ == "__main__":
    main()
