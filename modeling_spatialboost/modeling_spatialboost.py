"""SpatialBoost encoders: DINOv3 ViT and SigLIP / SigLIP2 vision towers with dual-channel attention.

SpatialBoost (Jeon et al., "SpatialBoost: Enhancing Visual Representation through Language-Guided Reasoning",
https://arxiv.org/abs/2603.22057) injects spatial knowledge into a frozen encoder through a second attention branch
per layer, mixed per hidden channel:

    out(x) = α ⊙ Attn(x) + (1 − α) ⊙ Attn⁺(x),    α = sigmoid(a)

Where the branch attaches in one encoder layer (everything outside `attention` is upstream and frozen):

    x ─► norm ─► attention ───────────────────────────────────────────────► (layer scale) ─► + x ─► norm ─► MLP ...
                 ├─ Attn  = q_proj, k_proj, v_proj, o_proj      (pre-trained, frozen)
                 └─ Attn⁺ = attn_plus.{q,k,v,o}_proj, attn_plus.mix_logit (= a)      (trainable)

`Attn⁺` starts as an exact copy of `Attn` and `a` at zero, so a freshly converted encoder computes exactly what its
base computed. Upstream parameter names are untouched (a base checkpoint loads without a key map); the new weights
all live under `attn_plus`. The two branches run as two plain passes: on CPU this measured faster than one fused
pass (benchmarks/bench_encoder.py).

This file travels to the Hub as remote code: it imports only torch, transformers, huggingface_hub and
`configuration_spatialboost`.
"""

import tempfile
from dataclasses import dataclass

import torch
from huggingface_hub import CommitInfo, HfApi, ModelCard, ModelCardData
from torch import nn
from transformers import (
    AutoImageProcessor,
    DINOv3ViTBackbone,
    DINOv3ViTImageProcessor,
    DINOv3ViTModel,
    Siglip2ImageProcessor,
    Siglip2VisionModel,
    SiglipImageProcessor,
    SiglipVisionModel,
)
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.dinov3_vit.modeling_dinov3_vit import (
    DINOv3ViTAttention,
    apply_rotary_pos_emb,
    eager_attention_forward,
    rotate_half,
)
from transformers.models.siglip.modeling_siglip import SiglipAttention
from transformers.models.siglip2.modeling_siglip2 import Siglip2Attention
from transformers.utils import cached_file

from .configuration_spatialboost import (
    SpatialBoostDinov3ViTConfig,
    SpatialBoostSiglip2VisionConfig,
    SpatialBoostSiglipVisionConfig,
)
from .fused_attention import fused_dual_attention


PAPER_URL = "https://arxiv.org/abs/2603.22057"
# `from_pretrained` arguments that say where files come from; the image processor is read with the same ones.
HUB_KWARGS = ("revision", "token", "cache_dir", "local_files_only", "force_download", "subfolder")


class AttnPlus(nn.Module):
    """`Attn⁺`: a trainable copy of one layer's q/k/v/output projections, and the mix logit `a`.

    The projections keep the upstream attribute names of the attention they copy, so `attention.q_proj` pairs with
    `attention.attn_plus.q_proj`.

    Args:
        attention (`nn.Module`):
            The upstream attention whose projections are copied in shape (values are copied by
            [`DualChannelAttentionMixin.reset_attn_plus`]).
        projection_names (`tuple[str, ...]`):
            Attribute names of the query, key, value and output projections in the upstream attention.
    """

    def __init__(self, attention: nn.Module, projection_names: tuple[str, ...]):
        super().__init__()
        for name in projection_names:
            source: nn.Linear = getattr(attention, name)
            self.add_module(name, nn.Linear(source.in_features, source.out_features, bias=source.bias is not None))
        # `a`: one logit per hidden channel; sigmoid(0) = 0.5 mixes the two branches evenly.
        self.mix_logit = nn.Parameter(torch.zeros(attention.embed_dim))


class DualChannelAttentionMixin:
    """Turns an upstream attention class into a dual-channel one; mixed in before the upstream class.

    The subclass sets `projection_names` (query, key, value, output) and, if the family rotates queries and keys,
    overrides `rotate_queries_and_keys`.
    """

    projection_names: tuple[str, str, str, str]

    def __init__(self, config):
        super().__init__(config)
        self.attn_plus = AttnPlus(self, self.projection_names)

    def rotate_queries_and_keys(self, queries, keys, position_embeddings):
        return queries, keys

    def rotate_stacked_queries_and_keys(self, queries_and_keys, position_embeddings):
        """The fused pass's rotation: queries and keys stacked on a leading dim (2, batch, heads, tokens, head_dim)."""
        return queries_and_keys

    @torch.no_grad()
    def reset_attn_plus(self) -> None:
        """Makes `Attn⁺` an exact copy of `Attn` and sets `a` to zero, the state right after conversion."""
        for name in self.projection_names:
            source, target = getattr(self, name), getattr(self.attn_plus, name)
            target.weight.copy_(source.weight)
            if source.bias is not None:
                target.bias.copy_(source.bias)
        self.attn_plus.mix_logit.zero_()

    def attend(
        self,
        projections: nn.Module,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One branch: the upstream attention computed with the q/k/v/output projections held by `projections`."""
        q_name, k_name, v_name, o_name = self.projection_names
        batch_size, num_tokens, _ = hidden_states.shape
        # (batch, tokens, hidden) -> (batch, heads, tokens, head_dim)
        shape = (batch_size, num_tokens, -1, self.head_dim)
        queries = getattr(projections, q_name)(hidden_states).view(shape).transpose(1, 2)
        keys = getattr(projections, k_name)(hidden_states).view(shape).transpose(1, 2)
        values = getattr(projections, v_name)(hidden_states).view(shape).transpose(1, 2)
        queries, keys = self.rotate_queries_and_keys(queries, keys, position_embeddings)
        # attn_output: (batch, tokens, heads, head_dim)
        attn_output, attn_weights = self.attention_core(queries, keys, values, attention_mask, **kwargs)
        return getattr(projections, o_name)(attn_output.reshape(batch_size, num_tokens, -1)), attn_weights

    def attention_core(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        attention_mask: torch.Tensor | None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The upstream attention call (the configured backend) on (batch, heads, tokens, head_dim) inputs, any
        number of heads; returns (batch, tokens, heads, head_dim) and, from eager attention, the weights."""
        attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        return attention_interface(
            self,
            queries,
            keys,
            values,
            attention_mask,
            dropout=0.0 if not self.training else self.dropout,
            scaling=self.head_dim**-0.5,
            **kwargs,
        )

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        # Replaces the upstream forward: Attn and Attn⁺ mixed per channel after the output projections, either in
        # two plain passes (the default: fused did not measure faster, README "Cost") or one fused pass
        # (fused_attention.py), as config.attention_fusion says.
        if self.config.attention_fusion == "fused":
            return fused_dual_attention(self, hidden_states, attention_mask, position_embeddings, **kwargs)
        base_output, base_weights = self.attend(self, hidden_states, attention_mask, position_embeddings, **kwargs)
        plus_output, plus_weights = self.attend(
            self.attn_plus, hidden_states, attention_mask, position_embeddings, **kwargs
        )
        # α ⊙ Attn + (1 − α) ⊙ Attn⁺ == Attn⁺ + α ⊙ (Attn − Attn⁺): exact when the branches agree.
        alpha = torch.sigmoid(self.attn_plus.mix_logit).to(plus_output.dtype)
        output = torch.lerp(plus_output, base_output, alpha)
        # Eager attention returns weights: (batch, 2 × heads, queries, keys), Attn's heads first.
        weights = None if base_weights is None else torch.cat([base_weights, plus_weights], dim=1)
        return output, weights


class SpatialBoostDinov3ViTAttention(DualChannelAttentionMixin, DINOv3ViTAttention):
    """[`DINOv3ViTAttention`] with the SpatialBoost branch; RoPE rotates both branches' patch tokens alike."""

    projection_names = ("q_proj", "k_proj", "v_proj", "o_proj")

    def rotate_queries_and_keys(self, queries, keys, position_embeddings):
        cos, sin = position_embeddings
        return apply_rotary_pos_emb(queries, keys, cos, sin)

    def rotate_stacked_queries_and_keys(self, queries_and_keys, position_embeddings):
        # Upstream `apply_rotary_pos_emb` on one tensor holding both branches' queries and keys: one rotation.
        cos, sin = position_embeddings
        num_patches = sin.shape[-2]
        prefix, patches = queries_and_keys.split((queries_and_keys.shape[-2] - num_patches, num_patches), dim=-2)
        return torch.cat((prefix, patches * cos + rotate_half(patches) * sin), dim=-2)


class SpatialBoostSiglipAttention(DualChannelAttentionMixin, SiglipAttention):
    """[`SiglipAttention`] (SigLIP and SigLIP2 FixRes) with the SpatialBoost branch."""

    projection_names = ("q_proj", "k_proj", "v_proj", "out_proj")


class SpatialBoostSiglip2Attention(DualChannelAttentionMixin, Siglip2Attention):
    """[`Siglip2Attention`] (SigLIP2 NaFlex) with the SpatialBoost branch."""

    projection_names = ("q_proj", "k_proj", "v_proj", "out_proj")


@dataclass(frozen=True)
class BoostFamily:
    """What differs between encoder families at model level: their attention class, where it sits, their licence."""

    attention_class: type
    attention_attr: str  # attribute of an encoder layer holding its attention
    license: str
    license_name: str | None = None
    license_link: str | None = None


class SpatialBoostMixin:
    """Model-level SpatialBoost behaviour shared by every family; mixed in before the upstream model class."""

    boost_family: BoostFamily
    # A base checkpoint has no Attn⁺ weights; `from_pretrained` copies them from Attn.
    _keys_to_ignore_on_load_missing = [r"\.attn_plus\."]

    def __init__(self, config):
        # Compared by model_type: with remote code, the configuration class may come from another module copy.
        if config.model_type != self.config_class.model_type:
            raise ValueError(
                f"{type(self).__name__} takes a {self.config_class.__name__}, got {type(config).__name__}; "
                f"convert a base model or checkpoint with `{type(self).__name__}.from_base`."
            )
        super().__init__(config)
        for index in config.boosted_layer_indices:
            layer = self.encoder_layers[index]
            setattr(layer, self.boost_family.attention_attr, self.boost_family.attention_class(config))
        # A second post_init initialises the new modules (on the meta device, inside from_pretrained, it is free).
        self.post_init()
        self.reset_attn_plus()
        # Preprocessing that `save_pretrained` writes next to the weights; replaced by the base checkpoint's own
        # processor on conversion and by the saved one in `from_pretrained`.
        self.image_processor = self.default_image_processor()

    @property
    def encoder_layers(self) -> nn.ModuleList:
        raise NotImplementedError

    def default_image_processor(self):
        """The family's upstream image processor at this configuration's resolution."""
        raise NotImplementedError

    @property
    def dual_attentions(self) -> dict[int, DualChannelAttentionMixin]:
        """The dual-channel attention modules, keyed by layer index."""
        attr = self.boost_family.attention_attr
        return {index: getattr(self.encoder_layers[index], attr) for index in self.config.boosted_layer_indices}

    def reset_attn_plus(self) -> None:
        """Makes every `Attn⁺` a copy of its `Attn` and every `a` zero, the state right after conversion."""
        for attention in self.dual_attentions.values():
            attention.reset_attn_plus()

    def freeze_for_spatialboost(self) -> list[str]:
        """Freezes everything except `Attn⁺` and `a` (stage 3 of the paper).

        Returns:
            `list[str]`: the names of the parameters left trainable.
        """
        trainable = []
        for name, parameter in self.named_parameters():
            parameter.requires_grad_(".attn_plus." in name)
            if parameter.requires_grad:
                trainable.append(name)
        return trainable

    def mix_logits(self) -> dict[int, nn.Parameter]:
        """The logits `a` by layer index, e.g. to give them their own learning rate and no weight decay."""
        return {index: attention.attn_plus.mix_logit for index, attention in self.dual_attentions.items()}

    def mean_alpha(self) -> dict[int, float]:
        """Mean α = sigmoid(a) of each boosted layer: 0.5 at conversion; below 0.5 leans on `Attn⁺`."""
        return {
            index: torch.sigmoid(logit.detach().float()).mean().item() for index, logit in self.mix_logits().items()
        }

    def check_pixel_values(self, pixel_values: torch.Tensor) -> None:
        """Raises a `ValueError` unless `pixel_values` is (batch, channels, height, width) with the configured channels."""
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(
                f"pixel_values must be (batch, {self.config.num_channels}, height, width); "
                f"got {tuple(pixel_values.shape)}."
            )

    @classmethod
    def from_base(cls, base, boost_layers: list[int] | None = None, **kwargs):
        """Converts a base checkpoint of this family into a SpatialBoost encoder that computes exactly what it did.

        Args:
            base (`str`, `os.PathLike` or `PreTrainedModel`):
                A Hub id or local folder of a base checkpoint, or a base model already in memory (left unchanged).
            boost_layers (`list[int]`, *optional*):
                Layers that get a dual-channel attention; all by default.
            kwargs:
                For a checkpoint id or folder: passed to `from_pretrained` (`revision`, `dtype`, `device_map`,
                `attn_implementation`, ...).

        Raises:
            `ValueError`: the base is of another family, or a layer index is out of range.
        """
        if isinstance(base, nn.Module):
            config = cls.config_class.from_dict(
                {
                    **base.config.to_dict(),
                    "boost_layers": boost_layers,
                    "base_model_name_or_path": base.name_or_path or None,
                },
                attn_implementation=base.config._attn_implementation,
            )
            with torch.device(base.device):  # built where the base lives, in its dtype: no host-side copy
                model = cls._from_config(config, dtype=base.dtype)
            incompatible = model.load_state_dict(base.state_dict(), strict=False)
            missing = [key for key in incompatible.missing_keys if ".attn_plus." not in key]
            if missing or incompatible.unexpected_keys:
                raise ValueError(
                    f"{type(base).__name__} does not match {cls.__name__}: missing {missing}, "
                    f"unexpected {incompatible.unexpected_keys}."
                )
            # Non-persistent buffers (RoPE frequencies, position ids) are not in the state dict; a base cast with
            # `.to(dtype)` carries rounded copies of them, which the boosted encoder must use too to stay exact.
            for name, buffer in base.named_buffers():
                model.get_buffer(name).copy_(buffer)
            model.reset_attn_plus()
            return model

        hub_kwargs = {key: kwargs[key] for key in HUB_KWARGS if key in kwargs}
        config_dict, _ = cls.config_class.get_config_dict(base, **hub_kwargs)
        # A full SigLIP checkpoint (text and vision towers) keeps the vision tower's config under `vision_config`.
        config_dict = config_dict.get(cls.config_class.base_config_key, config_dict)
        config = cls.config_class.from_dict(
            {**config_dict, "boost_layers": boost_layers, "base_model_name_or_path": str(base)}
        )
        return cls.from_pretrained(base, config=config, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        # Adds two things: a base checkpoint (no Attn⁺ weights) converts, Attn⁺ starting as a copy of the loaded
        # Attn; and the image processor saved beside the weights becomes `model.image_processor`.
        if pretrained_model_name_or_path is None:
            # transformers' `from_pretrained(None, config=..., state_dict=...)`: no checkpoint folder, nothing to
            # read from the Hub, no processor to attach.
            return super().from_pretrained(None, *args, **kwargs)
        hub_kwargs = {key: kwargs[key] for key in HUB_KWARGS if key in kwargs}
        checkpoint_type = cls.config_class.get_config_dict(pretrained_model_name_or_path, **hub_kwargs)[0][
            "model_type"
        ]
        loaded = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        model = loaded[0] if kwargs.get("output_loading_info") else loaded
        if checkpoint_type != cls.config_class.model_type:
            model.reset_attn_plus()
        processor_file = cached_file(
            pretrained_model_name_or_path,
            "preprocessor_config.json",
            _raise_exceptions_for_missing_entries=False,
            **hub_kwargs,
        )
        if processor_file is not None:
            model.image_processor = AutoImageProcessor.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
        return loaded

    def create_model_card(self) -> ModelCard:
        """The model card (README.md) written by `save_pretrained`, with metadata from the configuration."""
        family = self.boost_family
        base = self.config.base_model_name_or_path
        card_data = ModelCardData(
            base_model=base,
            license=family.license,
            license_name=family.license_name,
            license_link=family.license_link,
            library_name="transformers",
            pipeline_tag="image-feature-extraction",
            tags=["spatialboost", "vision", "image-feature-extraction", self.config.model_type],
            datasets=self.config.training_datasets,
        )
        layers = f"layers {self.config.boost_layers}" if self.config.boost_layers else "every layer"
        content = f"""---
{card_data.to_yaml()}
---

# {type(self).__name__}

A SpatialBoost encoder ([paper]({PAPER_URL})): `{base or "a randomly initialised encoder"}` with a dual-channel
attention in {layers}. The base attention is frozen; a trainable copy `Attn⁺` and a per-channel mix logit `a`
(α = sigmoid(a)) were added, so the output of each layer is α ⊙ Attn(x) + (1 − α) ⊙ Attn⁺(x).

Trained on: {", ".join(self.config.training_datasets or []) or "nothing yet (freshly converted: outputs equal the base encoder's)"}.

## Use

```python
from transformers import AutoImageProcessor, AutoModel

model = AutoModel.from_pretrained("<this repo>", trust_remote_code=True, revision="<commit>")
processor = AutoImageProcessor.from_pretrained("<this repo>")
features = model(**processor(images=image, return_tensors="pt")).last_hidden_state
```

Pin `revision=` to a commit: the modelling code is run from this repository.
"""
        return ModelCard(content)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool | None = None,
        token: str | bool | None = None,
        revision: str | None = None,
        commit_message: str = "Upload SpatialBoost encoder",
        create_pr: bool = False,
    ) -> CommitInfo:
        """Uploads what `save_pretrained` writes (weights, config, remote code, image processor, model card).

        Replaces the upstream `push_to_hub`, which would overwrite this model card with a generic one.
        """
        api = HfApi(token=token)
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder)
            return api.upload_folder(
                repo_id=repo_id,
                folder_path=folder,
                commit_message=commit_message,
                revision=revision,
                create_pr=create_pr,
            )

    def save_pretrained(self, save_directory, *args, **kwargs):
        # Adds what the Hub contract asks for beside config and weights: the image processor and the model card.
        super().save_pretrained(save_directory, *args, **kwargs)
        self.image_processor.save_pretrained(save_directory)
        self.create_model_card().save(f"{save_directory}/README.md")

    def forward(self, pixel_values: torch.Tensor, *args, **kwargs) -> BaseModelOutputWithPooling:
        # Adds an input check: a wrong channel count otherwise fails deep inside a convolution or a reshape.
        self.check_pixel_values(pixel_values)
        return super().forward(pixel_values, *args, **kwargs)


class Dinov3Family:
    """What the DINOv3 ViT classes (model and backbone) share: their attention, layers, processor and licence."""

    config_class = SpatialBoostDinov3ViTConfig
    config: SpatialBoostDinov3ViTConfig
    boost_family = BoostFamily(
        attention_class=SpatialBoostDinov3ViTAttention,
        attention_attr="attention",
        license="other",
        license_name="dinov3-license",
        license_link="https://ai.meta.com/resources/models-and-libraries/dinov3-license/",
    )

    @property
    def encoder_layers(self) -> nn.ModuleList:
        return self.model.layer

    def default_image_processor(self):
        size = self.config.image_size
        return DINOv3ViTImageProcessor(size={"height": size, "width": size})


class SpatialBoostDinov3ViTModel(Dinov3Family, SpatialBoostMixin, DINOv3ViTModel):
    """[`DINOv3ViTModel`] whose attention layers carry the SpatialBoost branch (see the module docstring)."""


class SpatialBoostDinov3ViTBackbone(Dinov3Family, SpatialBoostMixin, DINOv3ViTBackbone):
    """[`DINOv3ViTBackbone`] with the SpatialBoost branch, for dense heads (DPT and others) through `AutoBackbone`.

    Same weights as [`SpatialBoostDinov3ViTModel`]: either class loads the other's folder.
    """


class SpatialBoostSiglipVisionModel(SpatialBoostMixin, SiglipVisionModel):
    """[`SiglipVisionModel`] (SigLIP, SigLIP2 FixRes) whose attention layers carry the SpatialBoost branch.

    The attention-pooling head (`head`) is not an encoder layer and stays as upstream.
    """

    config_class = SpatialBoostSiglipVisionConfig
    # A full SigLIP checkpoint also holds the text tower and the logit scale/bias; conversion reads the vision tower.
    _keys_to_ignore_on_load_unexpected = [r"^text_model\.", r"^logit_(scale|bias)$"]
    config: SpatialBoostSiglipVisionConfig
    boost_family = BoostFamily(
        attention_class=SpatialBoostSiglipAttention,
        attention_attr="self_attn",
        license="apache-2.0",
    )

    @property
    def encoder_layers(self) -> nn.ModuleList:
        return self.encoder.layers

    def default_image_processor(self):
        size = self.config.image_size
        return SiglipImageProcessor(size={"height": size, "width": size})


class SpatialBoostSiglip2VisionModel(SpatialBoostMixin, Siglip2VisionModel):
    """[`Siglip2VisionModel`] (SigLIP2 NaFlex) whose attention layers carry the SpatialBoost branch.

    Inputs are NaFlex patch sequences: `pixel_values` (batch, patches, channels × patch²), `pixel_attention_mask`
    and `spatial_shapes`, as produced by [`Siglip2ImageProcessor`].
    """

    config_class = SpatialBoostSiglip2VisionConfig
    # A full SigLIP checkpoint also holds the text tower and the logit scale/bias; conversion reads the vision tower.
    _keys_to_ignore_on_load_unexpected = [r"^text_model\.", r"^logit_(scale|bias)$"]
    config: SpatialBoostSiglip2VisionConfig
    boost_family = BoostFamily(
        attention_class=SpatialBoostSiglip2Attention,
        attention_attr="self_attn",
        license="apache-2.0",
    )

    @property
    def encoder_layers(self) -> nn.ModuleList:
        return self.encoder.layers

    def default_image_processor(self):
        return Siglip2ImageProcessor(patch_size=self.config.patch_size, max_num_patches=self.config.num_patches)

    def check_pixel_values(self, pixel_values):
        patch_dim = self.config.num_channels * self.config.patch_size**2
        if pixel_values.ndim != 3 or pixel_values.shape[-1] != patch_dim:
            raise ValueError(
                f"pixel_values must be NaFlex patches (batch, patches, {self.config.num_channels} × "
                f"{self.config.patch_size}² = {patch_dim}); got {tuple(pixel_values.shape)}."
            )


__all__ = [
    "SpatialBoostDinov3ViTBackbone",
    "SpatialBoostDinov3ViTModel",
    "SpatialBoostSiglip2VisionModel",
    "SpatialBoostSiglipVisionModel",
]


# `save_pretrained` writes `auto_map` and copies this file and `configuration_spatialboost.py` beside the weights, so
# `AutoModel.from_pretrained(folder, trust_remote_code=True)` works where this package is not installed.
for _model_class in (SpatialBoostDinov3ViTModel, SpatialBoostSiglipVisionModel, SpatialBoostSiglip2VisionModel):
    _model_class.config_class.register_for_auto_class()
    _model_class.register_for_auto_class("AutoModel")
SpatialBoostDinov3ViTBackbone.register_for_auto_class("AutoBackbone")
