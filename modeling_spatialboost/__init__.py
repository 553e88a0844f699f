"""SpatialBoost encoders and the VLM that trains them, as transformers models (https://arxiv.org/abs/2603.22057).

Importing this package registers the SpatialBoost configurations and models with `AutoConfig`, `AutoModel`,
`AutoBackbone` and `AutoModelForImageTextToText`, so saved SpatialBoost folders load without `trust_remote_code`.
"""

from transformers import AutoBackbone, AutoConfig, AutoModel, AutoModelForImageTextToText

from .configuration_spatialboost import (
    SpatialBoostDinov3ViTConfig,
    SpatialBoostSiglip2VisionConfig,
    SpatialBoostSiglipVisionConfig,
)
from .configuration_spatialboost_vlm import SpatialBoostVLMConfig
from .modeling_spatialboost import (
    SpatialBoostDinov3ViTBackbone,
    SpatialBoostDinov3ViTModel,
    SpatialBoostSiglip2VisionModel,
    SpatialBoostSiglipVisionModel,
)
from .modeling_spatialboost_vlm import SpatialBoostVLMForConditionalGeneration, SpatialBoostVLMModel


# Base checkpoint `model_type` -> the SpatialBoost class that converts it. Full SigLIP / SigLIP2 checkpoints (text
# and vision towers) convert their vision tower.
SUPPORTED_BASE_MODEL_TYPES = {
    "dinov3_vit": SpatialBoostDinov3ViTModel,
    "siglip": SpatialBoostSiglipVisionModel,
    "siglip_vision_model": SpatialBoostSiglipVisionModel,
    "siglip2": SpatialBoostSiglip2VisionModel,
    "siglip2_vision_model": SpatialBoostSiglip2VisionModel,
}

for _model_class in (SpatialBoostDinov3ViTModel, SpatialBoostSiglipVisionModel, SpatialBoostSiglip2VisionModel):
    AutoConfig.register(_model_class.config_class.model_type, _model_class.config_class)
    AutoModel.register(_model_class.config_class, _model_class)
AutoBackbone.register(SpatialBoostDinov3ViTConfig, SpatialBoostDinov3ViTBackbone)
AutoConfig.register(SpatialBoostVLMConfig.model_type, SpatialBoostVLMConfig)
AutoModel.register(SpatialBoostVLMConfig, SpatialBoostVLMModel)
AutoModelForImageTextToText.register(SpatialBoostVLMConfig, SpatialBoostVLMForConditionalGeneration)

__all__ = [
    "SUPPORTED_BASE_MODEL_TYPES",
    "SpatialBoostDinov3ViTBackbone",
    "SpatialBoostDinov3ViTConfig",
    "SpatialBoostDinov3ViTModel",
    "SpatialBoostSiglip2VisionConfig",
    "SpatialBoostSiglip2VisionModel",
    "SpatialBoostSiglipVisionConfig",
    "SpatialBoostSiglipVisionModel",
    "SpatialBoostVLMConfig",
    "SpatialBoostVLMForConditionalGeneration",
    "SpatialBoostVLMModel",
]
