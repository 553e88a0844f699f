"""`spatialboost-compare`: frozen-encoder probes for any set of encoders on the same splits, with a report.

SpatialBoost (https://arxiv.org/abs/2603.22057) claims that a boosted encoder holds more depth and segmentation
linearly than its base while keeping its general (category) ability. This command measures that: every encoder
named (a base checkpoint, a boosted repo, intermediate checkpoints; folders or Hub ids) is run frozen over the same
probe-train and probe-test images, the probes of `spatialboost.probes` are fitted and scored, and `report.md` is
written with the metric table and PNG plots (metric bars, example depth predictions, α per layer).

    spatialboost-compare --encoder base=facebook/dinov3-vits16-pretrain-lvd1689m \
        --encoder boosted=org/dinov3-vits16-spatialboost --data synthetic --output-dir probe-report
    spatialboost-compare --encoder base=tiny-spatialboost/encoder-base \
        --encoder boosted=tiny-spatialboost/encoder-spatialboost --data rgbd --rgbd-dir ../shared/data/rgbd/redwood

Data: `synthetic` (procedural rooms: depth, segmentation, category), `rgbd` (a `color/` + `depth/` folder: depth
only) or `hub` (a dataset id with a column mapping; see `spatialboost.probes.hub_split`).
"""

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib


matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402
from transformers import AutoConfig, AutoImageProcessor, AutoModel  # noqa: E402

import modeling_spatialboost  # noqa: E402, F401  (registers the SpatialBoost Auto classes)
from modeling_spatialboost.modeling_spatialboost import SpatialBoostMixin  # noqa: E402

from .probes import (  # noqa: E402
    ProbeSplit,
    classification_probes,
    depth_probe,
    encode_images,
    hub_split,
    rgbd_folder_split,
    segmentation_probe,
    synthetic_split,
)
from .vlm import SpatialBoostVLMConfig, load_spatialboost_vlm  # noqa: E402


DEPTH_METRICS = ("rmse", "abs_rel", "delta1", "delta2", "delta3")
# metric -> (column title, higher is better)
COLUMNS = {
    "rmse": ("depth RMSE (m) ↓", False),
    "abs_rel": ("depth AbsRel ↓", False),
    "delta1": ("δ1 ↑", True),
    "delta2": ("δ2 ↑", True),
    "delta3": ("δ3 ↑", True),
    "mean_iou": ("seg. mIoU ↑", True),
    "knn_accuracy": ("category kNN top-1 ↑", True),
    "linear_accuracy": ("category linear top-1 ↑", True),
}


@dataclass
class EncoderResult:
    """Probe scores of one encoder.

    Args:
        name (`str`): label in the report.
        source (`str`): folder or Hub id it was loaded from.
        metrics (`dict[str, float]`): keys of `COLUMNS` that the data allowed.
        mean_alpha (`dict[int, float]`): mean α per boosted layer (empty for an upstream encoder).
        depth_predictions (`list[np.ndarray]`): depth maps predicted for the first test images.
        group (`str`, *optional*): results of one group (e.g. "boosted" over seeds) share a colour in the plots.
    """

    name: str
    source: str
    metrics: dict
    mean_alpha: dict = field(default_factory=dict)
    depth_predictions: list = field(default_factory=list)
    group: str | None = None


def load_encoder(name_or_path: str, revision: str | None = None):
    """Any DINOv3 / SigLIP vision encoder, base or boosted, with its own image processor as `.image_processor`.

    A SpatialBoost VLM (a stage's output or one of its `checkpoint-N` folders) gives its vision tower, so
    intermediate training checkpoints can be compared without exporting them first.
    """
    if AutoConfig.from_pretrained(name_or_path, revision=revision).model_type == SpatialBoostVLMConfig.model_type:
        vlm, processor = load_spatialboost_vlm(name_or_path, revision=revision)
        encoder = vlm.model.vision_tower.eval()
        encoder.image_processor = processor.image_processor
        return encoder
    # The package's own classes load boosted folders (Auto classes registered on import), no remote code needed.
    model = AutoModel.from_pretrained(name_or_path, revision=revision).eval()
    model.image_processor = AutoImageProcessor.from_pretrained(name_or_path, revision=revision)
    return model


def probe_encoder(
    model, train: ProbeSplit, test: ProbeSplit, name: str, source: str = "", num_examples: int = 3
) -> EncoderResult:
    """Fits and scores every probe the splits have references for, on `model`'s frozen features."""
    train_features, test_features = encode_images(model, train.images), encode_images(model, test.images)
    metrics, depth_predictions = {}, []
    if train.depths is not None and test.depths is not None:
        depth = depth_probe(train_features, train.depths, test_features, test.depths)
        metrics.update({key: depth[key] for key in DEPTH_METRICS})
        depth_predictions = depth["predictions"][:num_examples]
    if train.masks is not None and test.masks is not None:
        # Without class names, the classes are those the fitting masks hold (255 = ignore is not a class).
        num_labels = (
            len(train.class_names) if train.class_names else 1 + max(int(m[m != 255].max()) for m in train.masks)
        )
        segmentation = segmentation_probe(train_features, train.masks, test_features, test.masks, num_labels)
        metrics["mean_iou"] = segmentation["mean_iou"]
    if train.labels is not None and test.labels is not None:
        metrics.update(classification_probes(train_features, train.labels, test_features, test.labels))
    mean_alpha = model.mean_alpha() if isinstance(model, SpatialBoostMixin) else {}
    return EncoderResult(name, source, metrics, mean_alpha, depth_predictions)


def compare(encoders: dict[str, str], train: ProbeSplit, test: ProbeSplit, revision: str | None = None) -> list:
    """Probes every encoder of `{name: folder or Hub id}` on the same splits; returns one `EncoderResult` each."""
    results = []
    for name, source in tqdm(encoders.items(), desc="encoders", unit="encoder"):
        model = load_encoder(source, revision=revision)
        results.append(probe_encoder(model, train, test, name, source))
    return results


def markdown_table(results: list[EncoderResult]) -> str:
    """The metric table; the best value of each column in bold."""
    keys = [key for key in COLUMNS if all(key in r.metrics for r in results)]
    lines = ["| encoder | " + " | ".join(COLUMNS[key][0] for key in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    best = {
        key: (max if COLUMNS[key][1] else min)(r.metrics[key] for r in results) if len(results) > 1 else None
        for key in keys
    }
    for r in results:
        cells = [f"**{r.metrics[k]:.4f}**" if r.metrics[k] == best[k] else f"{r.metrics[k]:.4f}" for k in keys]
        lines.append(f"| {r.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_metric_bars(results: list[EncoderResult], path: Path) -> Path:
    keys = [key for key in COLUMNS if all(key in r.metrics for r in results)]
    fig, axes = plt.subplots(1, len(keys), figsize=(2.2 * len(keys), 3.2), squeeze=False)
    groups = list(dict.fromkeys(r.group or r.name for r in results))
    colors = [plt.cm.tab10(groups.index(r.group or r.name) % 10) for r in results]
    for ax, key in zip(axes[0], keys, strict=True):
        ax.bar(range(len(results)), [r.metrics[key] for r in results], color=colors)
        ax.set_title(COLUMNS[key][0], fontsize=8)
        ax.set_xticks(range(len(results)), [r.name for r in results], rotation=60, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_depth_examples(results: list[EncoderResult], test: ProbeSplit, path: Path) -> Path:
    """Rows: test images; columns: RGB, reference depth, then each encoder's probe prediction (same colour scale)."""
    num = min(len(r.depth_predictions) for r in results)
    fig, axes = plt.subplots(num, 2 + len(results), figsize=(2.2 * (2 + len(results)), 1.9 * num), squeeze=False)
    for row in range(num):
        reference = np.where(np.isfinite(test.depths[row]), test.depths[row], 0.0)
        vmax = float(reference.max()) or 1.0
        panels = [("RGB", np.asarray(test.images[row])), ("reference depth", reference)]
        panels += [(r.name, r.depth_predictions[row]) for r in results]
        for ax, (title, value) in zip(axes[row], panels, strict=True):
            ax.imshow(value, cmap=None if value.ndim == 3 else "magma_r", vmin=0, vmax=vmax)
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_alpha(results: list[EncoderResult], path: Path) -> Path:
    """Mean α = sigmoid(a) per boosted layer (0.5 at conversion; lower means more weight on Attn⁺)."""
    fig, ax = plt.subplots(figsize=(4.5, 3))
    for r in results:
        if r.mean_alpha:
            layers = sorted(r.mean_alpha)
            ax.plot(layers, [r.mean_alpha[i] for i in layers], marker="o", label=r.name)
            ax.set_xticks(layers)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--", label="at conversion")
    ax.set_xlabel("layer")
    ax.set_ylabel("mean α")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(
    results: list[EncoderResult], test: ProbeSplit, output_dir: str | Path, title: str = "", notes: str = ""
) -> Path:
    """Writes `report.md` with the table, `metrics.png`, `depth_examples.png` and (boosted encoders) `alpha.png`."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    plot_metric_bars(results, output_dir / "metrics.png")
    sections = [
        f"# {title or 'SpatialBoost frozen-encoder probes'}",
        "Linear probes on frozen features (closed-form ridge; see `spatialboost/probes.py`). Encoders:",
        "\n".join(f"- **{r.name}**: `{r.source}`" for r in results),
        markdown_table(results),
        "![metric bars](metrics.png)",
    ]
    if all(r.depth_predictions for r in results):
        plot_depth_examples(results, test, output_dir / "depth_examples.png")
        sections.append(
            "Example depth predictions of the linear probe (same colour scale per row):\n\n![depth](depth_examples.png)"
        )
    if any(r.mean_alpha for r in results):
        plot_alpha(results, output_dir / "alpha.png")
        sections.append("Mean α = sigmoid(a) per boosted layer (0.5 at conversion):\n\n![alpha](alpha.png)")
    if notes:
        sections.append(notes)
    path = output_dir / "report.md"
    path.write_text("\n\n".join(sections) + "\n")
    return path


def load_splits(args: argparse.Namespace) -> tuple[ProbeSplit, ProbeSplit]:
    if args.data == "synthetic":
        size = tuple(args.image_size)
        train = synthetic_split(range(args.scene_seed, args.scene_seed + args.train_scenes), size)
        test_start = args.scene_seed + args.train_scenes
        return train, synthetic_split(range(test_start, test_start + args.test_scenes), size)
    if args.data == "rgbd":
        frames = rgbd_folder_split(args.rgbd_dir, depth_scale=args.depth_scale)
    else:
        frames = hub_split(
            args.dataset_name,
            image_column=args.image_column,
            depth_column=args.depth_column,
            depth_scale=args.depth_scale,
            mask_column=args.mask_column,
            mask_offset=args.mask_offset,
            label_column=args.label_column,
            split=args.dataset_split,
            revision=args.dataset_revision,
            num_rows=args.num_rows,
        )
    # The first frames fit the probe, the last `test_fraction` score it.
    cut = max(1, min(len(frames) - 1, round(len(frames) * (1 - args.test_fraction))))

    def part(rows: slice) -> ProbeSplit:
        depths, masks, labels = (
            None if column is None else column[rows] for column in (frames.depths, frames.masks, frames.labels)
        )
        return ProbeSplit(frames.images[rows], depths, masks, labels)

    return part(slice(None, cut)), part(slice(cut, None))


def run_compare(args) -> None:
    """Probe `args.encoders` on the chosen data and write the report (arguments of `spatialboost-compare`, parsed and
    checked in `spatialboost/cli.py`)."""
    encoders = args.encoders
    train, test = load_splits(args)
    print(f"Probe data: {args.data}, {len(train)} images to fit, {len(test)} to score.")
    results = compare(encoders, train, test, revision=args.revision)
    print(markdown_table(results))
    report = write_report(results, test, args.output_dir)
    print(f"\nReport: {report}")


def main(argv: list[str] | None = None) -> None:
    """`spatialboost-compare` (parser: `spatialboost/cli.py`)."""
    from .cli import compare

    compare(argv)


if __name__ == "__main__":
    main()
