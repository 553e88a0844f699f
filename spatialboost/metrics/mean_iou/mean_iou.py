"""Semantic segmentation metrics as an `evaluate` metric module: mean IoU, per-class IoU, pixel accuracy.

Load it by path (`evaluate.load("spatialboost/metrics/mean_iou")`). Used by SpatialBoost's frozen-encoder
segmentation probe (https://arxiv.org/abs/2603.22057).
"""

import datasets
import evaluate
import numpy as np


_DESCRIPTION = """
Intersection over union per class, accumulated over all pixels of all images (not averaged per image), then
averaged over the classes that occur in the predictions or the references (mean_iou). Pixels whose reference is
`ignore_index` are left out everywhere.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of int sequences): predicted class per pixel, one flattened map per image.
    references (`list` of int sequences): reference class per pixel.
    num_labels (`int`): number of classes; labels are 0 .. num_labels - 1.
    ignore_index (`int`, defaults to 255): reference value of pixels to leave out.
Returns:
    `dict` with mean_iou, per_class_iou (NaN for classes absent from both), pixel_accuracy.
Example:
    >>> metric = evaluate.load("spatialboost/metrics/mean_iou")
    >>> metric.compute(predictions=[[0, 1, 1]], references=[[0, 1, 0]], num_labels=2)["mean_iou"]
    0.5
"""


class MeanIoU(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("int32")),
                    "references": datasets.Sequence(datasets.Value("int32")),
                }
            ),
        )

    def _compute(self, predictions, references, num_labels: int, ignore_index: int = 255):
        prediction = np.concatenate([np.asarray(p, dtype=np.int64) for p in predictions])
        reference = np.concatenate([np.asarray(r, dtype=np.int64) for r in references])
        keep = reference != ignore_index
        prediction, reference = prediction[keep], reference[keep]
        if ((reference < 0) | (reference >= num_labels)).any() or (
            (prediction < 0) | (prediction >= num_labels)
        ).any():
            raise ValueError(f"labels must lie in 0..{num_labels - 1} (or be {ignore_index} in the references)")
        # confusion[i, j]: pixels of reference class i predicted as class j
        confusion = np.bincount(reference * num_labels + prediction, minlength=num_labels**2).reshape(num_labels, -1)
        intersection = np.diag(confusion).astype(np.float64)
        union = confusion.sum(0) + confusion.sum(1) - intersection
        with np.errstate(invalid="ignore", divide="ignore"):
            per_class = np.where(union > 0, intersection / union, np.nan)
        return {
            "mean_iou": float(np.nanmean(per_class)),
            "per_class_iou": per_class.tolist(),
            "pixel_accuracy": float(intersection.sum() / max(len(reference), 1)),
        }
