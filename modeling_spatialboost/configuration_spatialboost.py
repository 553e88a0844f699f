"""Configurations of SpatialBoost encoders.

SpatialBoost (Jeon et al., "SpatialBoost: Enhancing Visual Representation through Language-Guided Reasoning",
https://arxiv.org/abs/2603.22057) adds a trainable attention branch `Attn⁺` and a per-channel mix logit `a` to
the attention layers of a pre-trained vision encoder. Each configuration below is the upstream transformers
configuration of one encoder family plus the SpatialBoost fields, so a base checkpoint's `config.json` converts
without any renaming.

This file travels to the Hub as remote code: it imports only transformers and the standard library.
"""

from dataclasses import dataclass
from typing import ClassVar

from huggingface_hub.dataclasses import strict
from transformers import DINOv3ViTConfig, Siglip2VisionConfig, SiglipVisionConfig


# How a dual-channel attention computes its two branches (`attention_fusion`).
ATTENTION_FUSIONS = ("fused", "two_pass")


@dataclass(kw_only=True, repr=False)
class SpatialBoostConfigMixin:
    r"""
    The SpatialBoost fields shared by every encoder family.

    Args:
        boost_layers (`list[int]`, *optional*):
            Indices of the encoder layers that get a dual-channel attention (`Attn⁺` and `a`). `None` means every
            layer, the paper's setting.
        base_model_name_or_path (`str`, *optional*):
            The checkpoint the encoder was converted from (a Hub id or a local path); written to the model card as
            `base_model`.
        training_datasets (`list[str]`, *optional*):
            Hub ids of the datasets the branches were trained on; written to the model card.
        attention_fusion (`str`, *optional*, defaults to `"two_pass"`):
            How a dual-channel attention computes its two branches: `"two_pass"`, the upstream attention run once
            per branch; or `"fused"`, one pass (one GEMM for both q/k/v sets, one attention call over both head
            sets, weight gradients only where needed). Same weights, same outputs and gradients up to fp32
            round-off (tests/test_fused_attention.py). `"two_pass"` is the default because `"fused"` did not
            measure faster: in four CPU runs it took 0.96-1.71× the two-pass forward time and 0.99-1.21× its stage-3
            step time (benchmarks/bench_encoder.py, README "Cost of the second branch"); GPU figures are still to be
            measured.
    """

    # Upstream `model_type`s whose checkpoints this family converts from; set by each family.
    base_model_types: ClassVar[tuple[str, ...]] = ()

    boost_layers: list[int] | None = None
    base_model_name_or_path: str | None = None
    training_datasets: list[str] | None = None
    attention_fusion: str = "two_pass"

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # `from_dict` on a base checkpoint's config.json stores its `model_type` on the instance. A base of this
        # family is what conversion reads; any other family is a user error worth stopping early.
        loaded_type = self.__dict__.pop("model_type", type(self).model_type)
        if loaded_type not in (type(self).model_type, *self.base_model_types):
            raise ValueError(
                f"{type(self).__name__} converts checkpoints of model_type {', '.join(self.base_model_types)}; "
                f"got model_type {loaded_type!r}. Use the SpatialBoost class of that family (see "
                "`modeling_spatialboost.SUPPORTED_BASE_MODEL_TYPES`)."
            )
        if self.attention_fusion not in ATTENTION_FUSIONS:
            raise ValueError(
                f"attention_fusion must be one of {', '.join(map(repr, ATTENTION_FUSIONS))}; got {self.attention_fusion!r}."
            )
        if self.boost_layers is not None:
            if not self.boost_layers:
                raise ValueError("boost_layers is empty; give at least one layer index, or None for every layer.")
            self.boost_layers = sorted(set(self.boost_layers))
            out_of_range = [index for index in self.boost_layers if not 0 <= index < self.num_hidden_layers]
            if out_of_range:
                raise ValueError(
                    f"boost_layers {out_of_range} out of range: the encoder has {self.num_hidden_layers} layers "
                    f"(valid indices 0..{self.num_hidden_layers - 1})."
                )

    @property
    def boosted_layer_indices(self) -> list[int]:
        """The layer indices that carry a dual-channel attention."""
        return list(range(self.num_hidden_layers)) if self.boost_layers is None else list(self.boost_layers)


@strict
class SpatialBoostDinov3ViTConfig(SpatialBoostConfigMixin, DINOv3ViTConfig):
    r"""
    Configuration of a SpatialBoost DINOv3 ViT: [`DINOv3ViTConfig`] plus the fields of
    [`SpatialBoostConfigMixin`] (`boost_layers`, `base_model_name_or_path`, `training_datasets`).
    """

    model_type = "spatialboost_dinov3_vit"
    base_model_types = ("dinov3_vit",)


@strict
class SpatialBoostSiglipVisionConfig(SpatialBoostConfigMixin, SiglipVisionConfig):
    r"""
    Configuration of a SpatialBoost SigLIP / SigLIP2 FixRes vision tower (checkpoints of model_type `siglip`, whose
    vision config is read): [`SiglipVisionConfig`] plus the fields of [`SpatialBoostConfigMixin`].
    """

    model_type = "spatialboost_siglip_vision"
    base_model_types = ("siglip_vision_model",)


@strict
class SpatialBoostSiglip2VisionConfig(SpatialBoostConfigMixin, Siglip2VisionConfig):
    r"""
    Configuration of a SpatialBoost SigLIP2 NaFlex vision tower (checkpoints of model_type `siglip2`):
    [`Siglip2VisionConfig`] plus the fields of [`SpatialBoostConfigMixin`].
    """

    model_type = "spatialboost_siglip2_vision"
    base_model_types = ("siglip2_vision_model",)


__all__ = ["SpatialBoostDinov3ViTConfig", "SpatialBoostSiglip2VisionConfig", "SpatialBoostSiglipVisionConfig"]
