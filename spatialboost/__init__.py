"""SpatialBoost library code shared by the recipes, benchmarks and the quickstart (https://arxiv.org/abs/2603.22057)."""
