"""The VLM SpatialBoost trains: SpatialBoost encoder -> 2-layer GELU projector -> any causal LM, on transformers' LLaVA.

SpatialBoost (Jeon et al., https://arxiv.org/abs/2603.22057) injects spatial knowledge into a vision encoder by
training an LLM that reads the encoder's features to answer multi-turn spatial questions. The VLM is LLaVA-1.5 with
two differences, both in `SpatialBoostVLMModel`:

    pixel_values (images, 3, H, W)
      -> SpatialBoost encoder, LAST layer (`last_hidden_state`: the last layer's Attn⁺ gets gradients)
      -> drop the CLS and register tokens (`config.num_prefix_tokens`)           # (images, patches, vision hidden)
      -> multi_modal_projector: Linear -> GELU -> Linear                         # (images, patches, text hidden)
      -> scattered into the LM's input embeddings at the <image> placeholders

Everything else (projector, placeholder scatter, LM, loss, generation) is upstream `LlavaModel` /
`LlavaForConditionalGeneration`; the processor is the upstream `LlavaProcessor`.

This file travels to the Hub as remote code (`save_pretrained` writes `auto_map` and copies it with the encoder's
files), so a saved VLM loads with `AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True)` where
SpatialBoost is not installed. It imports only torch, transformers and the SpatialBoost files beside it.
"""

import torch
from torch import nn
from transformers import AutoModel, LlavaForConditionalGeneration, LlavaModel, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.llava.modeling_llava import LlavaMultiModalProjector, LlavaPreTrainedModel

from .configuration_spatialboost_vlm import SpatialBoostVLMConfig
from .modeling_spatialboost import SpatialBoostDinov3ViTModel, SpatialBoostSiglipVisionModel


# SpatialBoost encoder `model_type` -> its model class (NaFlex SigLIP2 is rejected by the configuration).
ENCODER_CLASSES = {
    model_class.config_class.model_type: model_class
    for model_class in (SpatialBoostDinov3ViTModel, SpatialBoostSiglipVisionModel)
}


class SpatialBoostVLMModel(LlavaModel):
    """[`LlavaModel`] reading the SpatialBoost encoder's last layer, patch tokens only."""

    config_class = SpatialBoostVLMConfig

    def __init__(self, config: SpatialBoostVLMConfig):
        # Replaces the upstream __init__ only to build the encoder by its SpatialBoost class: upstream's
        # `AutoModel.from_config` does not know the SpatialBoost model types where this file runs as remote code.
        # Same submodules, same parameter names.
        LlavaPreTrainedModel.__init__(self, config)
        self.vision_tower = ENCODER_CLASSES[config.vision_config.model_type]._from_config(config.vision_config)
        self.multi_modal_projector = LlavaMultiModalProjector(config)
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()

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


# `save_pretrained` writes `auto_map` and copies this file, `configuration_spatialboost_vlm.py` and the encoder's two
# files beside the weights.
SpatialBoostVLMModel.register_for_auto_class("AutoModel")
SpatialBoostVLMForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")

__all__ = ["SpatialBoostVLMForConditionalGeneration", "SpatialBoostVLMModel"]
