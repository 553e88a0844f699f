"""Configuration of the SpatialBoost VLM: a SpatialBoost encoder, a 2-layer GELU projector and any causal LM.

SpatialBoost (Jeon et al., "SpatialBoost: Enhancing Visual Representation through Language-Guided Reasoning",
https://arxiv.org/abs/2603.22057) trains its encoder's second attention branches through this VLM. The configuration is
upstream [`LlavaConfig`] with a SpatialBoost encoder as `vision_config`.

This file travels to the Hub as remote code: it imports only transformers, huggingface_hub and
`configuration_spatialboost`.
"""

from huggingface_hub.dataclasses import strict
from transformers import LlavaConfig

from .configuration_spatialboost import (
    SpatialBoostDinov3ViTConfig,
    SpatialBoostSiglip2VisionConfig,
    SpatialBoostSiglipVisionConfig,
)


# SpatialBoost encoder `model_type` -> its configuration class. Resolved here rather than through `AutoConfig`, which
# does not know these model types in a process that loads this file as remote code.
ENCODER_CONFIG_CLASSES = {
    config_class.model_type: config_class
    for config_class in (SpatialBoostDinov3ViTConfig, SpatialBoostSiglipVisionConfig, SpatialBoostSiglip2VisionConfig)
}
# What `save_pretrained` writes as `auto_map` (with these files), also held in memory: see `SpatialBoostVLMConfig`.
AUTO_MAP = {
    "AutoConfig": "configuration_spatialboost_vlm.SpatialBoostVLMConfig",
    "AutoModel": "modeling_spatialboost_vlm.SpatialBoostVLMModel",
    "AutoModelForImageTextToText": "modeling_spatialboost_vlm.SpatialBoostVLMForConditionalGeneration",
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
        f"The VLM's vision tower must be a SpatialBoost encoder ({', '.join(sorted(ENCODER_CONFIG_CLASSES))}); "
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
        auto_map (`dict[str, str]`, *optional*):
            The remote-code classes of this folder per Auto class; defaults to this file's and
            `modeling_spatialboost_vlm.py`'s, which `save_pretrained` copies beside the weights. Held in memory too,
            because clients read it to pick the Auto class of an architecture transformers does not ship (TRL's
            `trl sft` does), also for folders saved before they carried remote code.
    """

    model_type = "spatialboost_vlm"

    vision_feature_select_strategy: str = "full"
    vision_feature_layer: int = -1
    num_prefix_tokens: int | None = None
    training_history: list[dict] | None = None
    auto_map: dict[str, str] | None = None

    def __post_init__(self, **kwargs):
        # Adds: a `vision_config` dict is built with its SpatialBoost class (upstream goes through AutoConfig).
        if isinstance(self.vision_config, dict):
            model_type = self.vision_config.get("model_type")
            if model_type not in ENCODER_CONFIG_CLASSES:
                raise ValueError(
                    "The VLM's vision tower must be a SpatialBoost encoder "
                    f"({', '.join(sorted(ENCODER_CONFIG_CLASSES))}); got model_type {model_type!r}. Convert a base "
                    "checkpoint with `convert_to_spatialboost`."
                )
            self.vision_config = ENCODER_CONFIG_CLASSES[model_type](**self.vision_config)
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
        self.auto_map = {**AUTO_MAP, **(self.auto_map or {})}


# `save_pretrained` copies this file and `configuration_spatialboost.py` beside the config.
SpatialBoostVLMConfig.register_for_auto_class()

__all__ = ["SpatialBoostVLMConfig", "num_prefix_tokens_of"]
