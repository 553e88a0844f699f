"""Frozen-encoder probes, base vs boosted: depth (RMSE, AbsRel, δ1–δ3), segmentation (mIoU), category (kNN, linear).

SpatialBoost: https://arxiv.org/abs/2603.22057. Every encoder named is probed on the same splits in one run and a
markdown report with the metric table and PNG plots is written (library code: `spatialboost/compare.py`, the same
as the `spatialboost-compare` command).

    # a base checkpoint, an intermediate and the final boosted encoder, on held-out synthetic scenes
    python recipes/probe.py --encoder base=facebook/dinov3-vits16-pretrain-lvd1689m \
        --encoder step1000=out/stage3/encoder-step1000 --encoder boosted=org/dinov3-vits16-spatialboost \
        --revision <commit> --data synthetic --output-dir probe-report

    # offline, CPU, seconds: after the tiny recipes (recipes/configs/tiny/), on the Redwood RGB-D frames
    python recipes/probe.py --encoder base=tiny-spatialboost/encoder-base \
        --encoder boosted=tiny-spatialboost/encoder-spatialboost --data rgbd --rgbd-dir ../shared/data/rgbd/redwood

    # NYU Depth v2 from the Hub (a parquet copy; depth in metres)
    python recipes/probe.py --encoder ... --data hub --dataset-name sayakpaul/nyu_depth_v2 \
        --dataset-split validation --image-column image --depth-column depth_map --depth-scale 1 --num-rows 654

    # ADE20K (SceneParse150) segmentation: annotation 0 is "other", shifted to 255 (ignored) by --mask-offset -1
    python recipes/probe.py --encoder ... --data hub --dataset-name scene_parse_150 --dataset-split validation \
        --image-column image --mask-column annotation --mask-offset -1 --num-rows 2000
"""

from spatialboost.compare import main


if __name__ == "__main__":
    main()
