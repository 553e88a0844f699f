"""SpatialBoost library code shared by the recipes, benchmarks and the quickstart (https://arxiv.org/abs/2603.22057)."""

# Importing the package registers the SpatialBoost VLM with AutoConfig and AutoModelForImageTextToText, so a saved VLM
# reloads with the Auto classes.
from . import vlm


__all__ = ["vlm"]
