"""Monocular depth metrics as an `evaluate` metric module: RMSE, AbsRel, δ1, δ2, δ3 over valid pixels.

Load it by path (`evaluate.load("spatialboost/metrics/depth_estimation")`) or, once published, by Hub id. Used by
SpatialBoost's frozen-encoder depth probe (https://arxiv.org/abs/2603.22057), as in the DINOv2/DINOv3 protocols.
"""

import datasets
import evaluate
import numpy as np


_DESCRIPTION = """
Depth estimation metrics, computed over every pixel whose reference depth is finite and > 0, pooled over all images:
- rmse: sqrt(mean((pred - ref)^2)), in the unit of the depths (metres);
- abs_rel: mean(|pred - ref| / ref);
- delta1, delta2, delta3: fraction of pixels with max(pred / ref, ref / pred) < 1.25, 1.25^2, 1.25^3.
Predictions are clipped to `min_depth` before the ratios so that a zero prediction does not divide by zero.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of float sequences): predicted depth per pixel, one flattened map per image.
    references (`list` of float sequences): reference depth per pixel, same length per image; 0, NaN or inf mark
        pixels without depth.
    min_depth (`float`, defaults to 1e-3): lower clip for predictions.
Returns:
    `dict` with rmse, abs_rel, delta1, delta2, delta3 and num_pixels.
Example:
    >>> metric = evaluate.load("spatialboost/metrics/depth_estimation")
    >>> metric.compute(predictions=[[1.0, 2.0]], references=[[1.0, 4.0]])["abs_rel"]
    0.25
"""


class DepthEstimation(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Sequence(datasets.Value("float32")),
                }
            ),
        )

    def _compute(self, predictions, references, min_depth: float = 1e-3):
        prediction = np.concatenate([np.asarray(p, dtype=np.float64) for p in predictions])
        reference = np.concatenate([np.asarray(r, dtype=np.float64) for r in references])
        if prediction.shape != reference.shape:
            raise ValueError(f"predictions and references differ in size: {prediction.shape} vs {reference.shape}")
        valid = np.isfinite(reference) & (reference > 0)
        if not valid.any():
            raise ValueError("no reference pixel has a valid depth (finite and > 0)")
        prediction, reference = np.maximum(prediction[valid], min_depth), reference[valid]
        ratio = np.maximum(prediction / reference, reference / prediction)
        return {
            "rmse": float(np.sqrt(np.mean((prediction - reference) ** 2))),
            "abs_rel": float(np.mean(np.abs(prediction - reference) / reference)),
            "delta1": float(np.mean(ratio < 1.25)),
            "delta2": float(np.mean(ratio < 1.25**2)),
            "delta3": float(np.mean(ratio < 1.25**3)),
            "num_pixels": int(valid.sum()),
        }
