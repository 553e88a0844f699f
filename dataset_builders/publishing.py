"""Dataset layout shared by the builders: parquet shards, per-chunk completion markers, manifests, card, Hub upload.

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057). A build directory is also the Hub repository:

```
DIR/README.md                               dataset card
DIR/data/train-00003-of-00010.parquet       one file per chunk of consecutive samples (none for an empty chunk)
DIR/manifests/shard-000-of-004.json         counts per skip reason of one machine's share of the chunks
DIR/.progress/chunk-00003.json              completion marker, written after its parquet file (not uploaded)
DIR/.progress/build.json                    settings that fix the rows; a resumed build must match them
```

`load_dataset(DIR)` and `load_dataset("org/name")` read the same rows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from datasets import Dataset, Features, List, Value
from datasets import Image as ImageFeature
from huggingface_hub import DatasetCard, DatasetCardData, HfApi


# The two columns every dataset of the contract (DESIGN.md) starts with: the images in order, and the conversation in
# TRL's conversational format (`{"type": "image"}` parts reference `images` in order).
IMAGES_FEATURE = List(ImageFeature())
MESSAGES_FEATURE = List({"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})})

UPLOAD_PATTERNS = ["README.md", "data/*.parquet", "manifests/*.json"]

# The paper, as every dataset card cites it.
CITATION = """```bibtex
@article{jeon2026spatialboost,
  title={SpatialBoost: Enhancing Visual Representation through Language-Guided Reasoning},
  author={Jeon and Kim and Jang and Kim and Shin},
  journal={arXiv preprint arXiv:2603.22057},
  year={2026}
}
```"""


def chunk_file(output_dir: Path, chunk: int, num_chunks: int) -> Path:
    return output_dir / "data" / f"train-{chunk:05d}-of-{num_chunks:05d}.parquet"


def marker_file(output_dir: Path, chunk: int) -> Path:
    return output_dir / ".progress" / f"chunk-{chunk:05d}.json"


def _write_json_atomically(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    os.replace(tmp, path)


def write_chunk(
    output_dir: Path, chunk: int, num_chunks: int, rows: list[dict], features: Features, stats: dict
) -> None:
    """Write one chunk's parquet file, then its completion marker.

    Both are moved into place atomically and the marker comes last, so a chunk either has a marker and its complete
    file, or no marker (and is rebuilt, identically, on resume).

    Args:
        output_dir (`Path`): Build directory.
        chunk (`int`): Chunk index.
        num_chunks (`int`): Total number of chunks of the build (in the file name).
        rows (`list[dict]`): Rows matching `features`.
        features (`Features`): Declared features.
        stats (`dict`): Counts stored in the marker (built, attempted, skips per reason, ...).
    """
    target = chunk_file(output_dir, chunk, num_chunks)
    if rows:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = output_dir / ".progress" / f"chunk-{chunk:05d}.parquet.tmp"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        Dataset.from_list(rows, features=features).to_parquet(str(tmp))
        os.replace(tmp, target)
    else:
        # datasets cannot load an empty parquet file on its own, so an all-skipped chunk has no file at all.
        target.unlink(missing_ok=True)
    _write_json_atomically(marker_file(output_dir, chunk), {"chunk": chunk, **stats})


def claim_output_dir(output_dir: Path, signature: dict) -> None:
    """Record what a build directory holds, or check that a resumed build makes the same rows.

    Raises:
        ValueError: When the directory holds chunks of a build with other settings (mixing them would duplicate or
            mislabel rows).
    """
    path = output_dir / ".progress" / "build.json"
    signature = json.loads(json.dumps(signature))  # the form it has once read back
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != signature:
            changed = sorted(k for k in previous.keys() | signature.keys() if previous.get(k) != signature.get(k))
            raise ValueError(
                f"{output_dir} holds a build with other settings ({', '.join(changed)}); "
                "resume with the same settings or use a new directory"
            )
    else:
        _write_json_atomically(path, signature)


def read_marker(output_dir: Path, chunk: int) -> dict | None:
    path = marker_file(output_dir, chunk)
    return json.loads(path.read_text()) if path.exists() else None


def write_manifest(output_dir: Path, shard_index: int, num_shards: int, manifest: dict) -> Path:
    path = output_dir / "manifests" / f"shard-{shard_index:03d}-of-{num_shards:03d}.json"
    _write_json_atomically(path, manifest)
    return path


def write_card(output_dir: Path, card: DatasetCard) -> None:
    card.save(str(output_dir / "README.md"))


def make_card(
    *,
    pretty_name: str,
    license: str,
    tags: list[str],
    body: str,
    num_rows: int,
) -> DatasetCard:
    """A `DatasetCard` with Hub metadata for a build directory.

    `load_dataset` finds `data/train-*.parquet` as the train split by its default file patterns. The card declares
    no `configs` on purpose: with `configs` patterns, `datasets` keys its local cache on the patterns alone, so a
    rebuilt directory would load stale rows.

    Args:
        pretty_name (`str`): Title.
        license (`str`): Hub licence identifier of the data.
        tags (`list[str]`): Hub tags.
        body (`str`): Markdown body (columns, settings, backends, licences).
        num_rows (`int`): Rows built so far (for the size category).
    """
    size = (
        "n<1K"
        if num_rows < 1_000
        else "1K<n<10K"
        if num_rows < 10_000
        else "10K<n<100K"
        if num_rows < 100_000
        else "100K<n<1M"
    )
    data = DatasetCardData(
        pretty_name=pretty_name,
        license=license,
        task_categories=["visual-question-answering"],
        language=["en"],
        size_categories=[size],
        tags=tags,
    )
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def push_to_hub(
    output_dir: Path,
    repo_id: str,
    private: bool,
    token: str | None = None,
    api: HfApi | None = None,
    commit_message: str = "Upload SpatialBoost multi-turn spatial reasoning data",
) -> str:
    """Upload a build directory (card, parquet shards, manifests) to a Hub dataset repository.

    Each machine of a sharded build uploads its own chunk files and manifest; file names never collide.

    Args:
        output_dir (`Path`): Build directory.
        repo_id (`str`): `org/name` of the dataset repository (created when missing).
        private (`bool`): Create the repository private.
        token (`str`, *optional*): Hub token; the cached login is used when `None`.
        api (`HfApi`, *optional*): Client to use (tests pass a stub).
        commit_message (`str`): Message of the upload commit (each builder names its dataset).

    Returns:
        `str`: URL of the upload commit.
    """
    api = api or HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id,
        repo_type="dataset",
        folder_path=str(output_dir),
        allow_patterns=UPLOAD_PATTERNS,
        commit_message=commit_message,
    )
    return str(commit)
