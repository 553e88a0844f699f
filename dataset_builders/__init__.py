"""SpatialBoost dataset builders: one module per published dataset plus the shared pieces they use.

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057).

- `multiturn`: single-view 12-turn spatial reasoning conversations (stage 3), `spatialboost-build-multiturn`.
- `multiview_vqa`: multi-view VQA over 2/4/8 views (stage 2), `spatialboost-build-multiview-vqa`.
- `multiview_multiturn`: the 12-turn structure over 2/4/8 views (stage 3), `spatialboost-build-multiview-multiturn`.
- `views`: posed views, covisibility, view-pair selection and expansion; `reconstruction`: unposed frames (VGGT,
  metric scale); `writers`: the LLM writer over an OpenAI-compatible endpoint.
- `scenes`: procedural indoor scenes with exact depth, masks, labels, intrinsics and poses.
- `sources`: synthetic, RGB-D, image-folder and Hub-dataset inputs as `frames.Frame`s.
- `perception`: depth, segmentation and caption backends for inputs without ground truth.
- `geometry` (conventions), `spatial` (frame -> 3D objects), `questions` (turns), `publishing` (layout, card, Hub).
"""
