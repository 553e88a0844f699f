"""Package-side helpers of the SpatialBoost VLM: assembly from an encoder and an LM, processor, chat template, loading.

SpatialBoost (Jeon et al., https://arxiv.org/abs/2603.22057) trains its encoder inside a VLM: SpatialBoost encoder
(last layer, patch tokens only) -> 2-layer GELU projector -> any causal LM, on transformers' LLaVA classes. The model
and its configuration live in `modeling_spatialboost/` (`modeling_spatialboost_vlm.py`,
`configuration_spatialboost_vlm.py`) so that they travel to the Hub as remote code with the encoder's files; they are
re-exported here. The processor is the upstream `LlavaProcessor` (strategy "full", no additional image tokens: one
placeholder per patch) around the encoder's image processor, with the chat template shipped in
`spatialboost/chat_templates/spatialboost.jinja`.

SigLIP2 NaFlex encoders give a variable number of patches per image, which `LlavaProcessor` cannot express; they are
rejected with a `ValueError` (use a FixRes SigLIP2 checkpoint, which loads as `siglip`).
"""

from importlib.resources import files

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoProcessor,
    AutoTokenizer,
    LlavaProcessor,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

from modeling_spatialboost import (
    SUPPORTED_BASE_MODEL_TYPES,
    SpatialBoostVLMConfig,
    SpatialBoostVLMForConditionalGeneration,
    SpatialBoostVLMModel,
)
from modeling_spatialboost.configuration_spatialboost_vlm import num_prefix_tokens_of
from modeling_spatialboost.convert_to_spatialboost import convert_to_spatialboost


IMAGE_TOKEN = "<image>"
CHAT_TEMPLATE_FILE = files("spatialboost") / "chat_templates" / "spatialboost.jinja"
SPATIALBOOST_ENCODER_TYPES = {
    model_class.config_class.model_type for model_class in SUPPORTED_BASE_MODEL_TYPES.values()
}


def load_chat_template() -> str:
    """The SpatialBoost chat template (ChatML turns, `<image>` per image, `{% generation %}` around answers)."""
    return CHAT_TEMPLATE_FILE.read_text(encoding="utf-8")


def load_spatialboost_encoder(encoder_name_or_path: str, boost_layers: list[int] | None = None, **kwargs):
    """A SpatialBoost encoder from a SpatialBoost folder / repo, or converted on the fly from a base checkpoint.

    Args:
        encoder_name_or_path (`str`):
            Hub id or folder of a SpatialBoost encoder or of a base DINOv3 ViT / SigLIP checkpoint.
        boost_layers (`list[int]`, *optional*):
            For a base checkpoint: the layers that get a dual-channel attention (all by default). Must be `None` for
            a SpatialBoost checkpoint, whose layers are fixed.
        kwargs: passed to `from_pretrained` (`revision`, `dtype`, `attn_implementation`, ...).
    """
    hub_kwargs = {key: kwargs[key] for key in ("revision", "token", "cache_dir") if key in kwargs}
    model_type = AutoConfig.from_pretrained(encoder_name_or_path, **hub_kwargs).model_type
    if model_type in SPATIALBOOST_ENCODER_TYPES:
        if boost_layers is not None:
            raise ValueError(f"{encoder_name_or_path} is already a SpatialBoost encoder; boost_layers must be None.")
        return AutoModel.from_pretrained(encoder_name_or_path, **kwargs)
    return convert_to_spatialboost(encoder_name_or_path, boost_layers=boost_layers, **kwargs)


def load_spatialboost_vlm(
    model_name_or_path: str, **kwargs
) -> tuple[SpatialBoostVLMForConditionalGeneration, LlavaProcessor]:
    """A saved SpatialBoost VLM (a previous stage's output folder or Hub repo) and its processor.

    Args:
        model_name_or_path (`str`): Hub id or folder written by a stage recipe.
        kwargs: passed to `from_pretrained` (`revision`, `dtype`, `attn_implementation`, ...); `revision`, `token` and
            `cache_dir` also to the processor.
    """
    hub_kwargs = {key: kwargs[key] for key in ("revision", "token", "cache_dir") if key in kwargs}
    model = SpatialBoostVLMForConditionalGeneration.from_pretrained(model_name_or_path, **kwargs)
    return model, AutoProcessor.from_pretrained(model_name_or_path, **hub_kwargs)


def make_processor(encoder: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> LlavaProcessor:
    """`LlavaProcessor` for the SpatialBoost VLM: the encoder's image processor, one `<image>` token per patch.

    The tokenizer must already hold the `<image>` token (see [`build_spatialboost_vlm`]).
    """
    num_prefix_tokens_of(encoder.config)  # rejects NaFlex with a clear error
    return LlavaProcessor(
        image_processor=encoder.image_processor,
        tokenizer=tokenizer,
        patch_size=encoder.config.patch_size,
        vision_feature_select_strategy="full",
        num_additional_image_tokens=0,
        chat_template=load_chat_template(),
        image_token=IMAGE_TOKEN,
    )


def image_tokens_per_image(processor: LlavaProcessor) -> int:
    """Placeholder tokens one image expands to (the encoder's patch count at the processor's fixed size)."""
    size = processor.image_processor.size
    return (size["height"] // processor.patch_size) * (size["width"] // processor.patch_size)


def build_spatialboost_vlm(
    encoder: str | PreTrainedModel,
    llm: str | PreTrainedModel,
    tokenizer: str | PreTrainedTokenizerBase | None = None,
    boost_layers: list[int] | None = None,
    dtype: torch.dtype | None = None,
    attn_implementation: str | None = None,
    encoder_revision: str | None = None,
    llm_revision: str | None = None,
    seed: int = 0,
) -> tuple[SpatialBoostVLMForConditionalGeneration, LlavaProcessor]:
    """Assembles the VLM trained in stage 1: SpatialBoost encoder + new projector + causal LM, and its processor.

    The encoder and LM keep their weights (no copy: the modules are moved into the VLM); the projector is freshly
    initialised; `<image>` is added to the tokenizer if missing and the LM's embeddings are resized.

    Args:
        encoder (`str` or `PreTrainedModel`):
            A SpatialBoost encoder (in memory, Hub id or folder) or a base DINOv3 ViT / SigLIP checkpoint id or folder,
            converted on the fly.
        llm (`str` or `PreTrainedModel`):
            Any transformers causal LM (Hub id, folder, or a model in memory).
        tokenizer (`str` or `PreTrainedTokenizerBase`, *optional*):
            The LM's tokenizer; read from `llm` when it is an id or folder.
        boost_layers (`list[int]`, *optional*):
            Layers that get a dual-channel attention when `encoder` is a base checkpoint.
        dtype (`torch.dtype`, *optional*):
            Dtype to load the encoder and LM in (e.g. `torch.bfloat16`).
        attn_implementation (`str`, *optional*):
            Attention backend of the encoder and LM ("sdpa", "eager", "flash_attention_2").
        encoder_revision (`str`, *optional*): Revision (pin a commit) of the encoder checkpoint given by id.
        llm_revision (`str`, *optional*): Revision of the LM and tokenizer given by id.
        seed (`int`, *optional*, defaults to 0):
            Seed of the projector's initialisation.

    Returns:
        `(SpatialBoostVLMForConditionalGeneration, LlavaProcessor)`.
    """

    def load_kwargs(revision):
        kwargs = {"dtype": dtype, "attn_implementation": attn_implementation, "revision": revision}
        return {key: value for key, value in kwargs.items() if value is not None}

    if isinstance(encoder, str):
        encoder = load_spatialboost_encoder(encoder, boost_layers=boost_layers, **load_kwargs(encoder_revision))
    if isinstance(llm, str):
        tokenizer = tokenizer or llm
        llm = AutoModelForCausalLM.from_pretrained(llm, **load_kwargs(llm_revision))
    if tokenizer is None:
        raise ValueError("Give the LM's tokenizer (an id, a folder or a tokenizer) when the LM is a model in memory.")
    if isinstance(tokenizer, str):
        tokenizer = AutoTokenizer.from_pretrained(tokenizer, **({"revision": llm_revision} if llm_revision else {}))

    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"extra_special_tokens": [IMAGE_TOKEN]})
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)

    config = SpatialBoostVLMConfig(
        vision_config=encoder.config,
        text_config=llm.config,
        image_token_index=image_token_id,
        image_seq_length=(encoder.config.image_size // encoder.config.patch_size) ** 2,
        projector_hidden_act="gelu",
    )
    # The encoder and LM are loaded already: build the VLM's shell on the meta device and move them in.
    with torch.device("meta"):
        model = SpatialBoostVLMForConditionalGeneration(config)
    model.model.vision_tower = encoder
    model.model.language_model = llm.get_decoder()
    model.lm_head = llm.get_output_embeddings()
    torch.manual_seed(seed)
    model.model.multi_modal_projector = LlavaMultiModalProjector(config).to(llm.device, llm.dtype)
    model.generation_config = llm.generation_config
    if len(tokenizer) > llm.config.vocab_size:
        model.resize_token_embeddings(len(tokenizer))
    model.tie_weights()
    return model, make_processor(encoder, tokenizer)


__all__ = [
    "IMAGE_TOKEN",
    "SpatialBoostVLMConfig",
    "SpatialBoostVLMForConditionalGeneration",
    "SpatialBoostVLMModel",
    "build_spatialboost_vlm",
    "image_tokens_per_image",
    "load_chat_template",
    "load_spatialboost_encoder",
    "load_spatialboost_vlm",
    "make_processor",
    "num_prefix_tokens_of",
]
