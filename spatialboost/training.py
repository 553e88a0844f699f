"""What the three SpatialBoost training stages share: freezing policy, optimizer groups, dataset validation, export.

SpatialBoost (Jeon et al., https://arxiv.org/abs/2603.22057) trains its VLM (`spatialboost.vlm`) in three stages:

| stage | trains | frozen |
|---|---|---|
| 1 feature alignment | projector | encoder, LLM |
| 2 visual instruction tuning | projector, LLM | encoder |
| 3 spatial injection | Attn⁺ and a (projector with `train_projector`) | base encoder, LLM |

Stage 2 can train a LoRA on the LM instead of the whole LM (TRL's `ModelConfig` options, `--use_peft`); the adapter is
merged into the LM when the stage is saved, so every stage starts from and writes a plain VLM.

The recipes (`recipes/stage{1,2,3}.py`) are thin scripts around these pieces and TRL's `SFTTrainer`.
"""

import enum
import io
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import PIL.Image
import torch
from datasets import Dataset, Image, LargeList, List, Value, concatenate_datasets, load_dataset
from huggingface_hub import HfApi
from peft import LoraConfig, PeftModel
from torch import nn
from transformers import LlavaProcessor
from trl import ModelConfig, SFTConfig, SFTTrainer, get_peft_config
from trl.data_utils import prepare_multimodal_messages

from .vlm import SpatialBoostVLMForConditionalGeneration, image_tokens_per_image, load_spatialboost_vlm


logger = logging.getLogger(__name__)
STAGES = (1, 2, 3)
STAGE_NAMES = {1: "feature alignment", 2: "visual instruction tuning", 3: "spatial injection"}


def freeze_for_stage(
    model: SpatialBoostVLMForConditionalGeneration, stage: int, train_projector: bool = False
) -> list[str]:
    """Sets `requires_grad` for one stage (see the module table) and returns the names of the trainable parameters.

    Args:
        model (`SpatialBoostVLMForConditionalGeneration`): the VLM.
        stage (`int`): 1, 2 or 3.
        train_projector (`bool`, *optional*, defaults to `False`):
            Stage 3 only: also train the projector (the paper does not say whether it does).
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage}.")
    if train_projector and stage != 3:
        raise ValueError("train_projector is a stage-3 option; stages 1 and 2 always train the projector.")
    model.requires_grad_(False)
    if stage == 3:
        model.model.vision_tower.freeze_for_spatialboost()
    if stage in (1, 2) or train_projector:
        model.model.multi_modal_projector.requires_grad_(True)
    if stage == 2:
        model.model.language_model.requires_grad_(True)
        model.lm_head.requires_grad_(True)
    return [name for name, parameter in model.named_parameters() if parameter.requires_grad]


def from_pretrained_kwargs(model_args: ModelConfig) -> dict:
    """`from_pretrained` keyword arguments from TRL's `ModelConfig`: revision, dtype and attention backend."""
    dtype = model_args.dtype if model_args.dtype in ("auto", None) else getattr(torch, model_args.dtype)
    kwargs = {
        "revision": model_args.model_revision,
        "dtype": dtype,
        "attn_implementation": model_args.attn_implementation,
    }
    return {key: value for key, value in kwargs.items() if value is not None}


def load_previous_stage(model_args: ModelConfig) -> tuple[SpatialBoostVLMForConditionalGeneration, LlavaProcessor]:
    """The VLM and processor a stage starts from (`--model_name_or_path`: the previous stage's folder or Hub repo)."""
    if model_args.model_name_or_path is None:
        raise ValueError("Give --model_name_or_path: the previous stage's output folder or Hub repo.")
    return load_spatialboost_vlm(model_args.model_name_or_path, **from_pretrained_kwargs(model_args))


def lora_config_for_stage(
    model_args: ModelConfig, model: SpatialBoostVLMForConditionalGeneration, stage: int
) -> LoraConfig | None:
    """TRL's LoRA options (`ModelConfig`: `--use_peft`, `--lora_r`, `--lora_alpha`, `--lora_target_modules`, ...) as a
    LoRA on the LM of stage 2; `None` without `--use_peft`.

    The adapter wraps LM modules only: `lora_target_modules` are names of the LM's linear layers (default, or
    `all-linear`: every linear layer of the LM's decoder), matched by a regex on their module path under
    `model.language_model`. By name alone they would also wrap the encoder, whose base and `Attn⁺` projections are
    also called `q_proj`, `k_proj`, `v_proj`, `o_proj`. The projector trains in full, as stage 2 always trains it
    (`modules_to_save`, saved with the adapter).

    Raises:
        `ValueError`: `--use_peft` in stage 1 or 3; quantized loading; LoRA on parameters (`lora_target_parameters`);
            a target name that no linear layer of the LM has; a module to save that the encoder has.
    """
    if model_args.load_in_4bit or model_args.load_in_8bit:
        raise ValueError("load_in_4bit / load_in_8bit are not supported: they would quantize the encoder too.")
    if not model_args.use_peft:
        return None
    if stage != 2:
        trained = {1: "the projector alone", 3: "Attn⁺ and a alone"}[stage]
        raise ValueError(
            f"--use_peft is offered for stage 2's LM only: stage {stage} trains {trained}, with the LM frozen."
        )
    if model_args.lora_target_parameters:
        raise ValueError(
            "lora_target_parameters is not supported: give the LM's linear layers in lora_target_modules."
        )
    linear_names = sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.model.language_model.named_modules()
            if isinstance(module, nn.Linear)
        }
    )
    requested = model_args.lora_target_modules  # TRL's ModelConfig turns a one-name list into a string
    names = [requested] if isinstance(requested, str) else requested
    if names is None or names == ["all-linear"]:
        names = linear_names
    unknown = sorted(set(names) - set(linear_names))
    if unknown:
        raise ValueError(f"lora_target_modules {unknown} are not linear layers of the LM; they are {linear_names}.")
    modules_to_save = ["multi_modal_projector", *(model_args.lora_modules_to_save or [])]
    # peft matches modules to save by the end of their path; none may be in the encoder.
    in_encoder = sorted(
        {
            target
            for name, _ in model.model.vision_tower.named_modules(prefix="model.vision_tower")
            for target in modules_to_save
            if name.endswith(target)
        }
    )
    if in_encoder:
        raise ValueError(f"lora_modules_to_save {in_encoder} name encoder modules; stage 2 keeps the encoder frozen.")
    peft_config = get_peft_config(model_args)
    peft_config.target_modules = rf"model\.language_model\..*\.({'|'.join(map(re.escape, names))})"
    peft_config.modules_to_save = modules_to_save
    return peft_config


def is_mix_logit(name: str) -> bool:
    """Whether a parameter name is a SpatialBoost mix logit `a`."""
    return name.endswith(".attn_plus.mix_logit")


@dataclass
class SpatialBoostSFTConfig(SFTConfig):
    r"""
    [`SFTConfig`] plus the SpatialBoost optimizer option, with `assistant_only_loss=True` by default (loss on the
    assistant answers of every turn, with their end-of-turn token, and nothing else).

    Args:
        mix_logit_learning_rate (`float`, *optional*):
            Learning rate of the mix logits `a` (their own parameter group, never weight-decayed: decay would pull α
            towards 0.5). `None` means `learning_rate`.
    """

    mix_logit_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Learning rate of the mix logits a (own group, no weight decay); default: learning_rate."},
    )
    assistant_only_loss: bool = field(default=True, metadata={"help": "Loss on the assistant answers only."})


@dataclass
class SpatialBoostDataArguments:
    """Which datasets a stage trains on, and what to do with rows that fail validation."""

    dataset_names: list[str] = field(
        metadata={"help": "Hub ids or local folders (parquet) of datasets with images + messages; concatenated."}
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Dataset configuration name (all datasets)."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    on_bad_rows: str = field(
        default="raise",
        metadata={"help": "What validation does with bad rows: 'raise' (name them) or 'skip' (drop and count them)."},
    )
    validation_num_proc: int | None = field(default=None, metadata={"help": "Processes for the validation pass."})


def load_training_data(args: SpatialBoostDataArguments) -> Dataset:
    """The train splits of `args.dataset_names`, reduced to `images` and `messages` and concatenated."""
    parts = []
    for name in args.dataset_names:
        dataset = load_dataset(name, args.dataset_config, split=args.dataset_train_split)
        missing = {"images", "messages"} - set(dataset.column_names)
        if missing:
            raise ValueError(
                f"{name} has no {sorted(missing)} column (columns: {dataset.column_names}); SpatialBoost datasets "
                "have `images` (a list) and `messages` (TRL conversational format)."
            )
        parts.append(dataset.select_columns(["images", "messages"]))
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def optimizer_parameter_groups(
    model: torch.nn.Module, decay_parameter_names: set[str], weight_decay: float, mix_logit_learning_rate: float | None
) -> list[dict]:
    """The trainable parameters in three groups: decayed, not decayed, and the mix logits `a` (own lr, no decay)."""
    groups = {"decay": [], "no_decay": [], "mix_logit": []}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        key = "mix_logit" if is_mix_logit(name) else "decay" if name in decay_parameter_names else "no_decay"
        groups[key].append(parameter)
    mix_group = {"params": groups["mix_logit"], "weight_decay": 0.0}
    if mix_logit_learning_rate is not None:
        mix_group["lr"] = mix_logit_learning_rate
    candidates = [
        {"params": groups["decay"], "weight_decay": weight_decay},
        {"params": groups["no_decay"], "weight_decay": 0.0},
        mix_group,
    ]
    return [group for group in candidates if group["params"]]


class SpatialBoostSFTTrainer(SFTTrainer):
    """[`SFTTrainer`] whose optimizer gives the mix logits `a` their own learning rate and no weight decay."""

    def create_optimizer(self, model=None):
        # Replaces the upstream two groups (decay / no decay) with three: the mix logits get their own.
        if self.optimizer is None:
            opt_model = self.model if model is None else model
            groups = optimizer_parameter_groups(
                opt_model,
                set(self.get_decay_parameter_names(opt_model)),
                self.args.weight_decay,
                self.args.mix_logit_learning_rate,
            )
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer


class RowProblem(str, enum.Enum):
    """Why validation rejects a row: the kind before the colon of each problem, and the keys of
    `ValidationReport.counts`."""

    EMPTY_CONVERSATION = "empty conversation"  # no assistant answer with text
    BAD_MESSAGES = "bad messages"  # not TRL's conversational format (a message, role, content or part is malformed)
    MISSING_IMAGE = "missing image"  # an image is null, or names a file that does not exist
    CORRUPT_IMAGE = "corrupt image"  # an image does not decode
    IMAGE_MISMATCH = "image mismatch"  # image placeholders and images differ in number
    TOO_LONG = "too long"  # longer than max_length once each image expands to its patch tokens


@dataclass
class ValidationReport:
    """What the up-front validation found: the problems of each bad row, and how many rows each problem hit."""

    num_rows: int
    bad_rows: dict[int, list[str]]

    @property
    def counts(self) -> Counter:
        """Bad rows per problem kind (a `RowProblem` value)."""
        return Counter(problem.split(":")[0] for problems in self.bad_rows.values() for problem in problems)

    def summary(self, max_rows: int = 20) -> str:
        lines = [f"{len(self.bad_rows)} of {self.num_rows} rows are bad ({dict(self.counts)}):"]
        for index, problems in list(self.bad_rows.items())[:max_rows]:
            lines.append(f"  row {index}: {'; '.join(problems)}")
        if len(self.bad_rows) > max_rows:
            lines.append(f"  ... and {len(self.bad_rows) - max_rows} more rows")
        return "\n".join(lines)


ROLES = ("system", "user", "assistant", "tool")  # what TRL's collator accepts


def image_file_exists(image: dict) -> bool:
    """Whether an undecoded image without bytes points at a file that exists."""
    return image["path"] is not None and Path(image["path"]).is_file()


def image_problems(images: list) -> list[str]:
    """Problems of a row's undecoded images (`{"bytes", "path"}`): each must be present and decode, as the collator
    will decode it."""
    missing, corrupt = [], []
    for i, image in enumerate(images):
        if image is None or not (image["bytes"] or image_file_exists(image)):
            missing.append(i)
            continue
        try:
            with PIL.Image.open(io.BytesIO(image["bytes"]) if image["bytes"] else image["path"]) as opened:
                opened.load()
        except PIL.UnidentifiedImageError:
            corrupt.append(f"images[{i}] is not an image Pillow can read")
        except Exception as error:  # Pillow's decoders raise many types; every one means the same here
            corrupt.append(f"images[{i}] does not decode ({type(error).__name__}: {error})")
    problems = []
    if missing:
        problems.append(f"{RowProblem.MISSING_IMAGE.value}: images {missing} are empty")
    if corrupt:
        problems.append(f"{RowProblem.CORRUPT_IMAGE.value}: {'; '.join(corrupt)}")
    return problems


def message_shape_problems(messages) -> list[str]:
    """Where `messages` leaves TRL's conversational format: a list of `{"role", "content"}` dicts, `content` a string
    or a list of `{"type": "text", "text": ...}` / `{"type": "image"}` parts. Each problem names the message."""
    if not isinstance(messages, list):
        hint = " (JSON text? parse it with json.loads first)" if isinstance(messages, str) else ""
        return [f"`messages` is a {type(messages).__name__}, not a list of {{role, content}} messages{hint}"]
    found = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            found.append(f"messages[{i}] is a {type(message).__name__}, not a {{role, content}} dict")
            continue
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            found.append(f"messages[{i}] has role {role!r}, not one of {', '.join(ROLES)}")
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            found.append(f"messages[{i}] ({role}) has content {type(content).__name__}, not a string or a list")
            continue
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in ("text", "image"):
                found.append(f"messages[{i}].content[{j}] is not a text or image part")
            elif kind == "text" and not isinstance(part.get("text"), str):
                found.append(f"messages[{i}].content[{j}] is a text part without text")
    return found


def message_text(content) -> str:
    """The text of one message's content (a string, or the text parts)."""
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in content if part["type"] == "text")


def row_problems(images: list | None, messages) -> tuple[list[str], list[dict] | None]:
    """The shape problems of one row (empty when it is fine), each as "kind: detail" (kinds: `RowProblem`), and its
    messages as TRL's collator reads them (`None` when they cannot be read).

    A plain-string `content` is accepted, as the chat template and TRL's collator accept it: TRL makes it one text
    part and, when the first user message is a plain string, puts one image placeholder per image before its text.
    """
    problems = image_problems(images or [])
    num_images = len(images or [])
    if not messages:
        return [*problems, f"{RowProblem.EMPTY_CONVERSATION.value}: no assistant answer to train on"], None
    shape = message_shape_problems(messages)
    if shape:
        return [*problems, f"{RowProblem.BAD_MESSAGES.value}: {'; '.join(shape)}"], None
    if not any(m["role"] == "assistant" and message_text(m["content"]).strip() for m in messages):
        problems.append(f"{RowProblem.EMPTY_CONVERSATION.value}: no assistant answer to train on")
    placeholders = sum(
        part["type"] == "image" for m in messages if isinstance(m["content"], list) for part in m["content"]
    )
    if any(m["role"] == "user" and isinstance(m["content"], str) for m in messages):
        placeholders += num_images  # what TRL inserts into the first plain-string user message
    if placeholders != num_images:
        problems.append(f"{RowProblem.IMAGE_MISMATCH.value}: {placeholders} image placeholders, {num_images} images")
        return problems, None
    try:
        prepared = prepare_multimodal_messages(messages, images=[None] * num_images)
    except ValueError as error:  # e.g. image parts that already carry an image, which TRL does not count
        return [*problems, f"{RowProblem.BAD_MESSAGES.value}: {error}"], None
    # The placeholders without their (here empty) image payloads: all the chat template reads is the part type.
    for message in prepared:
        message["content"] = [{k: v for k, v in part.items() if k != "image"} for part in message["content"]]
    return problems, prepared


def column_problems(dataset: Dataset) -> list[str]:
    """Column types that make every row unusable (so skipping cannot help)."""
    images, messages = dataset.features["images"], dataset.features["messages"]
    problems = []
    if not (isinstance(images, (List, LargeList)) and isinstance(images.feature, Image)):
        problems.append(
            f"column `images` is {images}, not a list of images (List(Image())); a row with one image has [image]"
        )
    if isinstance(messages, Value):
        hint = " (JSON text? parse it with json.loads first)" if messages.dtype in ("string", "large_string") else ""
        problems.append(
            f"column `messages` is {messages}: one value per row, not a list of {{role, content}} messages{hint}"
        )
    return problems


def validate_dataset(
    dataset: Dataset,
    processor: LlavaProcessor,
    max_length: int | None,
    on_bad_rows: str = "raise",
    num_proc: int | None = None,
) -> tuple[Dataset, ValidationReport]:
    """Checks every row before training, as the collator will read it: every image present and decodable, messages in
    TRL's conversational format (a plain-string `content` is read as TRL reads it), as many image placeholders as
    images, an assistant answer to train on, and no sample longer than `max_length` once each `<image>` expands to
    its patch tokens (truncating one would cut image tokens and fail mid-training).

    The pass decodes every image once and renders and tokenizes every row once; `num_proc` spreads it over processes.

    Args:
        dataset (`Dataset`): rows with `images` and `messages` (the dataset contract).
        processor (`LlavaProcessor`): the VLM's processor (chat template, tokenizer, patch count).
        max_length (`int`, *optional*): the training `max_length`; `None` skips the length check.
        on_bad_rows (`str`, *optional*, defaults to `"raise"`):
            `"raise"`: raise a `ValueError` naming the bad rows, each problem with its column (`images[1]`,
            `messages[3].content[0]`). `"skip"`: drop them and log how many of each kind (`RowProblem`).
        num_proc (`int`, *optional*): processes for the pass.

    Returns:
        `(Dataset, ValidationReport)`: the dataset (without the bad rows when skipping) and what was found.

    Raises:
        `ValueError`: with `"raise"`, when a row is bad; always, when a column has the wrong type, when the dataset
            has no rows, or when skipping left none (the message gives the skip counts by kind).
    """
    if on_bad_rows not in ("raise", "skip"):
        raise ValueError(f"on_bad_rows must be 'raise' or 'skip', got {on_bad_rows!r}.")
    missing_columns = {"images", "messages"} - set(dataset.column_names)
    if missing_columns:
        raise ValueError(f"The dataset has no {sorted(missing_columns)} column; columns: {dataset.column_names}.")
    columns = column_problems(dataset)
    if columns:
        raise ValueError(
            "The dataset's columns cannot be trained on (every row is affected):\n  " + "\n  ".join(columns)
        )
    if len(dataset) == 0:
        raise ValueError("The dataset has no rows to train on.")
    tokens_per_image = image_tokens_per_image(processor)
    tokenizer = processor.tokenizer
    # Undecoded images ({"bytes", "path"}): validation decodes each one itself and reports the failures.
    images_feature = type(dataset.features["images"])(Image(decode=False))
    view = dataset.select_columns(["images", "messages"]).cast_column("images", images_feature)

    def find_problems(batch):
        checked = [
            row_problems(images, messages) for images, messages in zip(batch["images"], batch["messages"], strict=True)
        ]
        texts = [
            processor.apply_chat_template(prepared, tokenize=False) if prepared else "" for _, prepared in checked
        ]
        lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
        found = []
        for (problems, prepared), images, length in zip(checked, batch["images"], lengths, strict=True):
            # Each <image> in the text becomes tokens_per_image tokens.
            length += len(images or []) * (tokens_per_image - 1)
            if prepared is not None and max_length is not None and length > max_length:
                problems = [*problems, f"{RowProblem.TOO_LONG.value}: {length} tokens > max_length {max_length}"]
            found.append(problems)
        return {"problems": found}

    problems = view.map(find_problems, batched=True, remove_columns=view.column_names, num_proc=num_proc)["problems"]
    report = ValidationReport(len(dataset), {i: p for i, p in enumerate(problems) if p})
    if not report.bad_rows:
        return dataset, report
    if on_bad_rows == "raise":
        raise ValueError(
            f"Dataset validation failed before training (set on_bad_rows='skip' to drop these rows):\n{report.summary()}"
        )
    if len(report.bad_rows) == len(dataset):
        raise ValueError(
            f"No rows left to train on: all {len(dataset)} rows failed validation and were skipped "
            f"(by kind: {dict(report.counts)}).\n{report.summary()}"
        )
    logger.warning("Skipping bad rows found by validation:\n%s", report.summary())
    keep = [i for i in range(len(dataset)) if i not in report.bad_rows]
    return dataset.select(keep), report


def training_dataset(
    data_args: SpatialBoostDataArguments, processor: LlavaProcessor, training_args: SFTConfig
) -> tuple[Dataset, ValidationReport]:
    """`data_args`' datasets, validated before any training time is spent (see [`validate_dataset`]).

    The main process goes first, so that processes of a distributed run read its cache instead of racing to write it.
    """
    with training_args.main_process_first(desc="dataset validation"):
        return validate_dataset(
            load_training_data(data_args),
            processor,
            training_args.max_length,
            on_bad_rows=data_args.on_bad_rows,
            num_proc=data_args.validation_num_proc,
        )


def record_stage(model: SpatialBoostVLMForConditionalGeneration, stage: int, datasets: list[str], trained: list[str]):
    """Appends one finished stage to `config.training_history` (stage, data, which modules trained)."""

    def module(name: str) -> str:
        name = name.removeprefix("base_model.model.")  # a LoRA run's trainer model is a PeftModel
        if ".attn_plus." in name:
            return "Attn⁺ and a"
        if ".lora_" in name:
            return "model.language_model (LoRA, merged)"
        parts = name.split(".")
        return ".".join(parts[:2]) if parts[0] == "model" else parts[0]

    modules = sorted({module(name) for name in trained})
    entry = {"stage": stage, "name": STAGE_NAMES[stage], "datasets": list(datasets), "trained": modules}
    history = [item for item in model.config.training_history or [] if item["stage"] != stage]
    model.config.training_history = [*history, entry]


def save_stage(trainer: SFTTrainer, stage: int, dataset_names: list[str], model_args: ModelConfig | None = None):
    """Records the stage in the VLM's config, saves the VLM and its processor to `output_dir` (the next stage's
    `--model_name_or_path`), and pushes them to `hub_model_id` with `--push_to_hub`.

    A LoRA run (the trainer's model is a `PeftModel`) saves its adapter (LoRA tensors and the projector) under
    `output_dir/adapter`; the main process then reloads the VLM the stage started from (`model_args`), merges the
    adapter into its LM and saves that as the VLM. Reading the adapter back from disk makes the merge independent of how
    training was sharded (ZeRO-3, FSDP).
    """
    args = trainer.args
    trained = [name for name, parameter in trainer.model.named_parameters() if parameter.requires_grad]
    if not isinstance(trainer.model, PeftModel):
        record_stage(trainer.model, stage, dataset_names, trained)
        trainer.save_model(args.output_dir)
        if args.push_to_hub:
            trainer.push_to_hub(dataset_name=dataset_names)
        return
    adapter_dir = Path(args.output_dir) / "adapter"
    trainer.save_model(adapter_dir)
    if trainer.is_world_process_zero():
        model, processor = load_previous_stage(model_args)
        model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
        record_stage(model, stage, dataset_names, trained)
        model.save_pretrained(args.output_dir)
        processor.save_pretrained(args.output_dir)
        if args.push_to_hub:
            api = HfApi()
            repo_id = api.create_repo(
                args.hub_model_id or Path(args.output_dir).name, private=args.hub_private_repo, exist_ok=True
            ).repo_id
            api.upload_folder(
                repo_id=repo_id,
                folder_path=args.output_dir,
                commit_message=f"SpatialBoost stage {stage}: LoRA merged into the LM (adapter in adapter/)",
            )
    trainer.accelerator.wait_for_everyone()


def save_boosted_encoder(
    model: SpatialBoostVLMForConditionalGeneration,
    processor: LlavaProcessor,
    output_dir: str | Path,
    push_to_hub: str | None = None,
    private: bool | None = None,
) -> Path:
    """Saves the VLM's encoder alone per the Hub contract (and pushes it when `push_to_hub` is a repo id).

    The folder holds what the encoder's `save_pretrained` writes (config with `auto_map`, weights, remote code,
    `preprocessor_config.json`, model card with `datasets`) and a "Training" section in the card listing the stages
    from `config.training_history`.
    """
    encoder = model.model.vision_tower
    history = model.config.training_history or []
    encoder.config.training_datasets = sorted({name for item in history for name in item["datasets"]}) or None
    encoder.image_processor = processor.image_processor
    output_dir = Path(output_dir)
    encoder.save_pretrained(output_dir)
    lines = [
        "",
        "## Training",
        "",
        "Trained inside a VLM (this encoder -> 2-layer GELU projector -> "
        f"`{model.config.text_config.name_or_path or model.config.text_config.model_type}`) with "
        "[SpatialBoost's recipes](https://arxiv.org/abs/2603.22057):",
        "",
        "| stage | data | trained |",
        "|---|---|---|",
        *(
            f"| {item['stage']} {item['name']} | {', '.join(item['datasets'])} | {', '.join(item['trained'])} |"
            for item in history
        ),
        "",
    ]
    with open(output_dir / "README.md", "a", encoding="utf-8") as card:
        card.write("\n".join(lines))
    if push_to_hub:
        api = HfApi()
        repo_id = api.create_repo(push_to_hub, private=private, exist_ok=True).repo_id
        api.upload_folder(repo_id=repo_id, folder_path=output_dir, commit_message="Upload SpatialBoost encoder")
    return output_dir


__all__ = [
    "SpatialBoostDataArguments",
    "SpatialBoostSFTConfig",
    "SpatialBoostSFTTrainer",
    "RowProblem",
    "ValidationReport",
    "freeze_for_stage",
    "from_pretrained_kwargs",
    "load_previous_stage",
    "load_training_data",
    "lora_config_for_stage",
    "optimizer_parameter_groups",
    "record_stage",
    "save_boosted_encoder",
    "save_stage",
    "training_dataset",
    "validate_dataset",
]
