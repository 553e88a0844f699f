"""The VLM SpatialBoost trains: SpatialBoost encoder -> 2-layer GELU projector -> any causal LM, on transformers' LLaVA.

SpatialBoost (Jeon et al., https://arxiv.org/abs/2603.22057) injects spatial knowledge into a vision encoder by
training an LLM that reads the encoder's features to answer multi-turn spatial questions. The VLM is LLaVA-1.5 with
two differences, both in `get_image_features`:

    pixel_values (images, 3, H, W)
      -> SpatialBoost encoder, LAST layer (`last_hidden_state`: the last layer's Attn⁺ gets gradients)
      -> drop the CLS and register tokens (`config.num_prefix_tokens`)           # (images, patches, vision hidden)
      -> multi_modal_projector: Linear -> GELU -> Linear                         # (images, patches, text hidden)
      -> scattered into the LM's input embeddings at the <image> placeholders

Everything else (projector, placeholder scatter, LM, loss, generation) is upstream `LlavaModel` /
`LlavaForConditionalGeneration`. The processor is the upstream `LlavaProcessor` (strategy "full", no additional
image tokens: one placeholder per patch) around the encoder's image processor, with the chat template shipped in
`spatialboost/chat_templates/spatialboost.jinja`.

SigLIP2 NaFlex encoders give a variable number of patches per image, which `LlavaProcessor` cannot express; they are
rejected with a `ValueError` (use a FixRes SigLIP2 checkpoint, which loads as `siglip`).
"""

from importlib.resources import files

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaModel,
    LlavaProcessor,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.llava.modeling_llava import LlavaMultiModalProjector, LlavaPreTrainedModel

from modeling_spatialboost import SUPPORTED_BASE_MODEL_TYPES
from modeling_spatialboost.convert_to_spatialboost import convert_to_spatialboost


IMAGE_TOKEN = "<image>"
CHAT_TEMPLATE_FILE = files("spatialboost") / "chat_templates" / "spatialboost.jinja"
SPATIALBOOST_ENCODER_TYPES = {
    model_class.config_class.model_type for model_class in SUPPORTED_BASE_MODEL_TYPES.values()
}


def num_prefix_tokens_of(vision_config) -> int:
    """Tokens the encoder puts before its patch tokens: CLS + registers for DINOv3, none for SigLIP.

    Raises:
        `ValueError`: the encoder is not a SpatialBoost DINOv3 ViT or SigLIP (FixRes) encoder.
    """
    if vision_config.model_type == "spatialboost_dinov3_vit":
        return 1 + vision_config.num_register_tokens
    if vision_config.model_type == "spatialboost_siglip_vision":
        return 0
    if vision_config.model_type == "spatialboost_siglip2_vision":
        raise ValueError(
            "SigLIP2 NaFlex encoders give a variable number of patches per image, which LlavaProcessor cannot express; "
            "use a FixRes SigLIP2 checkpoint (e.g. google/siglip2-so400m-patch14-384, model_type siglip)."
        )
    raise ValueError(
        f"The VLM's vision tower must be a SpatialBoost encoder ({', '.join(sorted(SPATIALBOOST_ENCODER_TYPES))}); "
        f"got model_type {vision_config.model_type!r}. Convert a base checkpoint with `convert_to_spatialboost`."
    )


@strict
class SpatialBoostVLMConfig(LlavaConfig):
    r"""
    Configuration of the SpatialBoost VLM: [`LlavaConfig`] with a SpatialBoost encoder as `vision_config`, the
    encoder's last layer as features (`vision_feature_layer=-1`, read from `last_hidden_state`) and every patch
    token as one image token (`vision_feature_select_strategy="full"`, after the prefix tokens are dropped).

    Args:
        num_prefix_tokens (`int`, *optional*):
            Tokens before the patch tokens in the encoder's output that are dropped before the projector: 1 (CLS) +
            `num_register_tokens` for DINOv3, 0 for SigLIP. Derived from `vision_config` when not given; a given value
            must agree with it.
        training_history (`list[dict]`, *optional*):
            One entry per finished training stage (`stage`, `datasets`, `trained`), appended by the recipes; the
            boosted encoder's model card is written from it.
    """

    model_type = "spatialboost_vlm"

    vision_feature_select_strategy: str = "full"
    vision_feature_layer: int = -1
    num_prefix_tokens: int | None = None
    training_history: list[dict] | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.vision_feature_select_strategy != "full" or self.vision_feature_layer != -1:
            raise ValueError(
                "SpatialBoostVLMConfig reads every patch token of the encoder's last layer: "
                "vision_feature_select_strategy must be 'full' and vision_feature_layer -1, got "
                f"{self.vision_feature_select_strategy!r} and {self.vision_feature_layer}."
            )
        expected = num_prefix_tokens_of(self.vision_config)
        if self.num_prefix_tokens is None:
            self.num_prefix_tokens = expected
        elif self.num_prefix_tokens != expected:
            raise ValueError(
                f"num_prefix_tokens={self.num_prefix_tokens} but the {self.vision_config.model_type} encoder puts "
                f"{expected} tokens before its patches."
            )


class SpatialBoostVLMModel(LlavaModel):
    """[`LlavaModel`] reading the SpatialBoost encoder's last layer, patch tokens only."""

    config_class = SpatialBoostVLMConfig

    def train(self, mode: bool = True):
        # Adds: the encoder stays in eval mode in every stage. It is a feature extractor whose training-time
        # augmentations (DINOv3's random RoPE rescaling, drop path) would make the LM read features it never sees at
        # inference, and make runs irreproducible. Eval mode does not stop gradients: Attn⁺ and a still train.
        super().train(mode)
        self.vision_tower.eval()
        return self

    def get_image_features(
        self,
        pixel_values: torch.Tensor,
        vision_feature_layer: int | None = None,
        vision_feature_select_strategy: str | None = None,
        image_sizes: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        # Replaces the upstream selection from `hidden_states[vision_feature_layer]`: the last layer's output
        # (`last_hidden_state`, so the last layer's Attn⁺ trains) without the CLS and register tokens. The LM's kwargs
        # (cache, attention flags) are not the encoder's and are not passed on.
        image_outputs = self.vision_tower(pixel_values=pixel_values, return_dict=True)
        # (images, prefix + patches, vision hidden) -> (images, patches, vision hidden)
        patch_features = image_outputs.last_hidden_state[:, self.config.num_prefix_tokens :]
        # (images, patches, text hidden), one entry per image as upstream
        image_outputs.pooler_output = list(self.multi_modal_projector(patch_features))
        return image_outputs


class SpatialBoostVLMForConditionalGeneration(LlavaForConditionalGeneration):
    """[`LlavaForConditionalGeneration`] around [`SpatialBoostVLMModel`]; upstream forward, loss and generation."""

    config_class = SpatialBoostVLMConfig

    def __init__(self, config: SpatialBoostVLMConfig):
        # Replaces the upstream __init__ only to build `SpatialBoostVLMModel` instead of `LlavaModel` (building both
        # would allocate the encoder and the LM twice); same submodules, same parameter names.
        LlavaPreTrainedModel.__init__(self, config)
        self.model = SpatialBoostVLMModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    @property
    def vision_tower(self) -> PreTrainedModel:
        """The SpatialBoost encoder."""
        return self.model.vision_tower


AutoConfig.register(SpatialBoostVLMConfig.model_type, SpatialBoostVLMConfig)
AutoModel.register(SpatialBoostVLMConfig, SpatialBoostVLMModel)
AutoModelForImageTextToText.register(SpatialBoostVLMConfig, SpatialBoostVLMForConditionalGeneration)


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
    "SpatialBoostVLMConfig",
    "SpatialBoostVLMForConditionalGeneration",
    "SpatialBoostVLMModel",
    "build_spatialboost_vlm",
    "image_tokens_per_image",
    "load_chat_template",
    "load_spatialboost_encoder",
    "load_spatialboost_vlm",
    "make_processor",
]
