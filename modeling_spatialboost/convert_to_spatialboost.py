"""Converts a DINOv3 ViT or SigLIP / SigLIP2 checkpoint into a SpatialBoost encoder folder (or Hub repo).

SpatialBoost: https://arxiv.org/abs/2603.22057. The written folder holds `config.json` (with `auto_map`),
`model.safetensors`, the remote-code files, the base checkpoint's `preprocessor_config.json` and a model card; its
outputs equal the base encoder's until `Attn⁺` and `a` are trained.

    spatialboost-convert facebook/dinov3-vitb16-pretrain-lvd1689m ./dinov3-vitb16-spatialboost --revision <commit>
    spatialboost-convert google/siglip2-so400m-patch14-384 ./siglip2-spatialboost --layers 20 21 22 23 24 25 26

The base is checked before anything is written: every safetensors file readable, every tensor present with its
shape, every weight finite, each `--layers` index given once. A refused conversion prints one line naming the
checkpoint (and the file at fault) and exits with status 1. This module is not remote code; it does not travel to
the Hub.
"""

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from transformers import AutoConfig
from transformers.utils import cached_file

from . import SUPPORTED_BASE_MODEL_TYPES


HUB_KWARGS = ("revision", "token", "cache_dir")


def looks_local(base) -> bool:
    """Whether `base` can only be a local path: a Hub id is `name` or `namespace/name`, never absolute, never led by
    `.` or `~`, with at most one `/`."""
    text = str(base)
    return (
        isinstance(base, os.PathLike)
        or text.startswith((".", "~"))
        or os.path.isabs(text)
        or text.count("/") > 1
        or "\\" in text
    )


def safetensors_files(base, hub_kwargs: dict) -> list[str]:
    """The checkpoint's safetensors files (one file, or the shards its index lists), local or fetched from the Hub;
    empty for a checkpoint without any (transformers then reads `pytorch_model.bin` itself)."""

    def fetch(name: str) -> str | None:
        return cached_file(base, name, _raise_exceptions_for_missing_entries=False, **hub_kwargs)

    single = fetch("model.safetensors")
    if single is not None:
        return [single]
    index = fetch("model.safetensors.index.json")
    if index is None:
        return []
    try:
        shards = sorted(set(json.loads(Path(index).read_text())["weight_map"].values()))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"model.safetensors.index.json is not a readable shard index ({error!r})") from error
    files = {shard: fetch(shard) for shard in shards}
    missing = [shard for shard, file in files.items() if file is None]
    if missing:
        raise ValueError(
            f"incomplete checkpoint: {', '.join(missing)}, listed in model.safetensors.index.json, missing"
        )
    return list(files.values())


def check_safetensors(files: list[str]) -> None:
    """Reads each file's header (no tensor data): a corrupt or truncated file fails here, by name, before loading."""
    for file in files:
        try:
            with safe_open(file, framework="pt") as opened:
                opened.keys()
        except (SafetensorError, OSError) as error:
            raise ValueError(
                f"{Path(file).name} is not a readable safetensors file, corrupt or truncated ({error}); "
                "download it again"
            ) from error


def loading_problems(model, info: dict) -> list[str]:
    """What makes a loaded base unusable: tensors the checkpoint lacks, tensors of the wrong shape, non-finite weights.

    `Attn⁺` is not in a base checkpoint (it is copied from `Attn`), so it is neither missing nor checked twice.
    """

    def listed(names: list[str]) -> str:
        return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")

    problems = []
    missing = sorted(key for key in info["missing_keys"] if ".attn_plus." not in key)
    if missing:
        problems.append(f"incomplete checkpoint: {len(missing)} tensors missing ({listed(missing)})")
    mismatched = sorted(info["mismatched_keys"])
    if mismatched:
        shapes = [f"{key} {list(loaded)} for {list(expected)}" for key, loaded, expected in mismatched]
        problems.append(f"{len(mismatched)} tensors of the wrong shape for config.json ({listed(shapes)})")
    non_finite = [
        name
        for name, tensor in model.state_dict().items()
        if ".attn_plus." not in name and tensor.is_floating_point() and not torch.isfinite(tensor).all()
    ]
    if non_finite:
        problems.append(f"non-finite weights (NaN or Inf) in {len(non_finite)} tensors ({listed(non_finite)})")
    return problems


def convert_to_spatialboost(base, boost_layers: list[int] | None = None, **from_pretrained_kwargs):
    """Loads a base checkpoint as the SpatialBoost model of its family (chosen by its `model_type`).

    The checkpoint is checked first: every safetensors file must be readable, every tensor of the base must be in it
    with its shape, and every weight must be finite. A refused conversion writes nothing.

    Args:
        base (`str` or `os.PathLike`):
            Hub id or local folder of a base checkpoint.
        boost_layers (`list[int]`, *optional*):
            Layers that get a dual-channel attention (each once); all by default.
        from_pretrained_kwargs:
            Passed to `from_pretrained` (`revision`, `dtype`, `attn_implementation`, ...).

    Raises:
        `ValueError`: naming `base` (and the file, where one is at fault): a local path that does not exist; a
            checkpoint that cannot be read, of a `model_type` SpatialBoost does not support, incomplete, with
            tensors of the wrong shape or non-finite weights; layers repeated or out of range.
    """
    try:
        return _convert(base, boost_layers, from_pretrained_kwargs)
    except (ValueError, OSError, SafetensorError) as error:
        message = str(error)
        raise ValueError(message if message.startswith(str(base)) else f"{base}: {message}") from error


def _convert(base, boost_layers: list[int] | None, from_pretrained_kwargs: dict):
    if boost_layers is not None:
        repeated = sorted({index for index in boost_layers if list(boost_layers).count(index) > 1})
        if repeated:
            raise ValueError(f"layers {repeated} are given more than once in boost_layers (--layers) {boost_layers}")
    path = Path(base).expanduser()
    local = looks_local(base) or path.exists()
    if local and not path.exists():
        raise ValueError("no such folder")
    if local and not path.is_dir():
        raise ValueError("a file, not a checkpoint folder (give the folder that holds config.json)")
    source = path if local else base
    hub_kwargs = {key: from_pretrained_kwargs[key] for key in HUB_KWARGS if key in from_pretrained_kwargs}
    try:
        model_type = AutoConfig.from_pretrained(source, **hub_kwargs).model_type
    except OSError as error:
        if local:
            raise
        raise ValueError(f"not a local folder, and it could not be loaded from the Hub: {error}") from error
    if model_type not in SUPPORTED_BASE_MODEL_TYPES:
        raise ValueError(
            f"{base} is a {model_type!r} checkpoint; SpatialBoost converts model types "
            f"{', '.join(sorted(SUPPORTED_BASE_MODEL_TYPES))}."
        )
    check_safetensors(safetensors_files(source, hub_kwargs))
    model, info = SUPPORTED_BASE_MODEL_TYPES[model_type].from_base(
        source,
        boost_layers=boost_layers,
        output_loading_info=True,
        ignore_mismatched_sizes=True,  # reported below, by name, instead of a bare RuntimeError
        **from_pretrained_kwargs,
    )
    problems = loading_problems(model, info)
    if problems:
        raise ValueError("; ".join(problems))
    return model


def main(argv: list[str] | None = None) -> None:
    """`spatialboost-convert`: a refused conversion prints one line naming the checkpoint and exits with status 1
    (the parser is `spatialboost/cli.py`'s, so that `--help` answers without importing torch)."""
    from spatialboost.cli import convert

    convert(argv)


if __name__ == "__main__":
    main()
