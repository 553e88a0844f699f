"""SpatialBoost library code shared by the recipes, benchmarks and the quickstart (https://arxiv.org/abs/2603.22057).

The package itself imports nothing heavy, so that the console scripts (`spatialboost.cli`) answer `--help` at once.
`spatialboost.vlm` (imported by every module that builds or trains a VLM) registers the SpatialBoost VLM with
`AutoConfig` and `AutoModelForImageTextToText`, as `import modeling_spatialboost` does.
"""

import importlib


__all__ = ["vlm"]


def __getattr__(name: str):
    # `spatialboost.vlm` as an attribute, imported (with torch and transformers) on first use.
    if name == "vlm":
        return importlib.import_module(".vlm", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
