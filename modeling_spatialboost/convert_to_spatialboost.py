"""Converts a DINOv3 ViT or SigLIP / SigLIP2 checkpoint into a SpatialBoost encoder folder (or Hub repo).

SpatialBoost: https://arxiv.org/abs/2603.22057. The written folder holds `config.json` (with `auto_map`),
`model.safetensors`, the remote-code files, the base checkpoint's `preprocessor_config.json` and a model card; its
outputs equal the base encoder's until `Attn⁺` and `a` are trained.

    spatialboost-convert facebook/dinov3-vitb16-pretrain-lvd1689m ./dinov3-vitb16-spatialboost --revision <commit>
    spatialboost-convert google/siglip2-so400m-patch14-384 ./siglip2-spatialboost --layers 20 21 22 23 24 25 26

This module is not remote code; it does not travel to the Hub.
"""

from dataclasses import dataclass, field

from transformers import AutoConfig, HfArgumentParser

from . import SUPPORTED_BASE_MODEL_TYPES


@dataclass
class ConvertArguments:
    """Options of `spatialboost-convert BASE OUTPUT_DIR` (the two positional arguments are added in `main`)."""

    layers: list[int] | None = field(
        default=None, metadata={"help": "Indices of the layers that get a dual-channel attention (default: all)."}
    )
    revision: str = field(default="main", metadata={"help": "Revision (commit, tag, branch) of the base checkpoint."})
    push_to_hub: str | None = field(default=None, metadata={"help": "Also push the result to this Hub repo id."})
    private: bool = field(default=False, metadata={"help": "Create the Hub repo as private."})


def convert_to_spatialboost(base, boost_layers: list[int] | None = None, **from_pretrained_kwargs):
    """Loads a base checkpoint as the SpatialBoost model of its family (chosen by its `model_type`).

    Args:
        base (`str` or `os.PathLike`):
            Hub id or local folder of a base checkpoint.
        boost_layers (`list[int]`, *optional*):
            Layers that get a dual-channel attention; all by default.
        from_pretrained_kwargs:
            Passed to `from_pretrained` (`revision`, `dtype`, `attn_implementation`, ...).

    Raises:
        `ValueError`: the checkpoint's `model_type` is not one SpatialBoost supports.
    """
    hub_kwargs = {
        key: from_pretrained_kwargs[key] for key in ("revision", "token", "cache_dir") if key in from_pretrained_kwargs
    }
    model_type = AutoConfig.from_pretrained(base, **hub_kwargs).model_type
    if model_type not in SUPPORTED_BASE_MODEL_TYPES:
        raise ValueError(
            f"{base} is a {model_type!r} checkpoint; SpatialBoost converts model types "
            f"{', '.join(sorted(SUPPORTED_BASE_MODEL_TYPES))}."
        )
    return SUPPORTED_BASE_MODEL_TYPES[model_type].from_base(base, boost_layers=boost_layers, **from_pretrained_kwargs)


def main(argv: list[str] | None = None) -> None:
    parser = HfArgumentParser(ConvertArguments, description=__doc__.split("\n")[0])
    parser.add_argument("base", help="Hub id or local folder of a DINOv3 ViT, SigLIP or SigLIP2 checkpoint.")
    parser.add_argument("output_dir", help="Folder to write the SpatialBoost encoder to.")
    args, paths = parser.parse_args_into_dataclasses(args=argv)
    model = convert_to_spatialboost(paths.base, boost_layers=args.layers, revision=args.revision)
    model.save_pretrained(paths.output_dir)
    trainable = sum(p.numel() for name, p in model.named_parameters() if ".attn_plus." in name)
    print(
        f"Converted {paths.base} ({model.config.num_hidden_layers} layers) into {type(model).__name__}: "
        f"dual-channel attention in layers {model.config.boosted_layer_indices}, "
        f"{trainable:,} new trainable parameters. Saved to {paths.output_dir}."
    )
    if args.push_to_hub:
        url = model.push_to_hub(args.push_to_hub, private=args.private)
        print(f"Pushed to {url}")


if __name__ == "__main__":
    main()
