"""Top-1 classification accuracy as an `evaluate` metric module, for SpatialBoost's kNN and linear probes.

Shipped with the package (https://arxiv.org/abs/2603.22057) so that the probes run offline; load it by path.
"""

import datasets
import evaluate
import numpy as np


_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of int): predicted class per example.
    references (`list` of int): reference class per example.
Returns:
    `dict` with accuracy (fraction of exact matches) and num_examples.
Example:
    >>> evaluate.load("spatialboost/metrics/top1_accuracy").compute(predictions=[0, 1], references=[0, 0])
    {'accuracy': 0.5, 'num_examples': 2}
"""


class Top1Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Fraction of examples whose predicted class equals the reference class.",
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references):
        prediction, reference = np.asarray(predictions), np.asarray(references)
        return {"accuracy": float(np.mean(prediction == reference)), "num_examples": int(len(reference))}
