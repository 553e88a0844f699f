"""Build orchestration: local layout and `load_dataset` round trip, card, manifest, resume, shards, processes, CLI."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from datasets import load_dataset
from huggingface_hub import DatasetCard
from PIL import Image

from dataset_builders import multiturn, publishing
from dataset_builders.building import YieldTooLowError
from dataset_builders.multiturn import COLUMN_DOCS, FEATURES, MultiturnArguments, build, main


REPO_ROOT = Path(__file__).resolve().parents[1]


def _args(tmp_path, **overrides):
    values = dict(source="synthetic", num_samples=8, seed=5, output_dir=str(tmp_path / "out"), samples_per_chunk=3)
    values.update(overrides)
    return MultiturnArguments(**values)


def _rows_by_index(directory):
    ds = load_dataset(str(directory), split="train")
    return ds, {row["provenance"]["index"]: row for row in ds}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("build")
    args = _args(tmp)
    return args, build(args)


def test_load_dataset_round_trip_gives_training_ready_rows(built):
    args, manifest = built
    ds, rows = _rows_by_index(args.output_dir)
    assert len(ds) == manifest["built"] == manifest["attempted"] - sum(manifest["skipped"].values())
    assert ds.features == FEATURES
    for row in ds:
        assert len(row["images"]) == 1 and isinstance(row["images"][0], Image.Image)
        assert row["images"][0].mode == "RGB" and row["images"][0].size == (640, 480)
        assert row["messages"][0]["content"][0]["type"] == "image"
        assert len(row["messages"]) == 2 * len(row["turns"])
        assert row["provenance"]["source"] == "synthetic" and row["provenance"]["metric_depth"]
    # Same rows as the pure per-example function gives.
    from dataset_fixtures import synthetic_samples

    for sample in synthetic_samples(args.seed, args.num_samples):
        if sample.row is None:
            assert sample.index not in rows
        else:
            assert rows[sample.index]["turns"] == sample.row["turns"]
            assert rows[sample.index]["messages"] == sample.row["messages"]


def test_rows_feed_a_chat_template(built):
    # TRL's vision SFT renders `messages` with the processor's chat template; any template that walks content
    # parts must see the image first and every turn's text.
    from jinja2 import Template

    template = Template(
        "{% for m in messages %}<{{ m.role }}>{% for c in m.content %}"
        "{% if c.type == 'image' %}<image>{% else %}{{ c.text }}{% endif %}{% endfor %}{% endfor %}"
    )
    args, _ = built
    row = load_dataset(args.output_dir, split="train")[0]
    text = template.render(messages=row["messages"])
    assert text.startswith("<user><image>") and text.count("<image>") == len(row["images"])
    assert text.count("<assistant>") == len(row["turns"])


def test_card_documents_every_column_and_the_settings(built):
    args, manifest = built
    card = DatasetCard.load(Path(args.output_dir) / "README.md")
    assert card.data.license == "cc-by-4.0"
    for column in FEATURES:
        assert f"`{column}`" in card.text and column in COLUMN_DOCS
    for key in ("seed", "num_samples", "order", "relation_margin_m", "max_top_row_m"):
        assert f"`{key}`" in card.text
    assert "2603.22057" in card.text and f"built {manifest['built']}" in card.text


def test_manifest_and_markers(built):
    args, manifest = built
    out = Path(args.output_dir)
    on_disk = json.loads((out / "manifests" / "shard-000-of-001.json").read_text())
    assert on_disk["built"] == manifest["built"] and on_disk["chunks_done"] == [0, 1, 2]
    markers = [json.loads(p.read_text()) for p in sorted((out / ".progress").glob("chunk-*.json"))]
    assert [m["attempted"] for m in markers] == [3, 3, 2]
    assert sum(m["built"] for m in markers) == manifest["built"]
    files = sorted(p.name for p in (out / "data").glob("*.parquet"))
    assert files == [f"train-{c:05d}-of-00003.parquet" for c in range(3) if markers[c]["built"]]


def test_resume_after_failure_mid_build_has_no_duplicates_or_loss(tmp_path, monkeypatch, built):
    reference_args, _ = built
    args = _args(tmp_path)
    real_write = publishing._write_json_atomically
    calls = []

    def dying_write(path, payload):
        # The process "dies" after chunk 1's parquet file is in place but before its marker is written.
        if path.name == "chunk-00001.json":
            raise KeyboardInterrupt
        calls.append(path.name)
        real_write(path, payload)

    monkeypatch.setattr(publishing, "_write_json_atomically", dying_write)
    with pytest.raises(KeyboardInterrupt):
        build(args)
    assert (tmp_path / "out" / "data" / "train-00001-of-00003.parquet").exists()
    assert not (tmp_path / "out" / ".progress" / "chunk-00001.json").exists()
    monkeypatch.setattr(publishing, "_write_json_atomically", real_write)

    built_chunks = []
    original = multiturn.MultiturnBuilder.build_chunk
    monkeypatch.setattr(
        multiturn.MultiturnBuilder, "build_chunk", lambda self, c: built_chunks.append(c) or original(self, c)
    )
    manifest = build(args)
    assert built_chunks == [1, 2]  # chunk 0 was complete and is not rebuilt
    ds, rows = _rows_by_index(args.output_dir)
    indices = [row["provenance"]["index"] for row in ds]
    assert len(indices) == len(set(indices)) == manifest["built"]
    _, reference = _rows_by_index(reference_args.output_dir)
    assert sorted(rows) == sorted(reference)


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path):
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "dataset_builders.multiturn",
        "--source",
        "synthetic",
        "--num-samples",
        "30",
        "--seed",
        "2",
        "--output-dir",
        str(out),
        "--samples-per-chunk",
        "2",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / ".progress" / "chunk-00001.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_before = sorted(p.name for p in (out / ".progress").glob("chunk-*.json"))
    assert 0 < len(done_before) < 15
    manifest = build(
        MultiturnArguments(source="synthetic", num_samples=30, seed=2, output_dir=str(out), samples_per_chunk=2)
    )
    ds = load_dataset(str(out), split="train")
    indices = [row["index"] for row in ds["provenance"]]
    assert len(indices) == len(set(indices)) == manifest["built"] and manifest["attempted"] == 30


def test_shards_split_the_work_and_add_up(tmp_path, built):
    reference_args, _ = built
    manifests = [build(_args(tmp_path, num_shards=2, shard_index=i)) for i in (0, 1)]
    assert [m["chunks"] for m in manifests] == [[0, 2], [1]]
    assert sum(m["attempted"] for m in manifests) == 8
    assert sorted((tmp_path / "out" / "manifests").iterdir()) == [
        tmp_path / "out" / "manifests" / "shard-000-of-002.json",
        tmp_path / "out" / "manifests" / "shard-001-of-002.json",
    ]
    _, rows = _rows_by_index(tmp_path / "out")
    _, reference = _rows_by_index(reference_args.output_dir)
    assert sorted(rows) == sorted(reference)
    assert all(rows[i]["turns"] == reference[i]["turns"] for i in rows)


@pytest.mark.slow
def test_worker_processes_give_the_same_rows(tmp_path, built):
    reference_args, _ = built
    manifest = build(_args(tmp_path, num_proc=2))
    _, rows = _rows_by_index(tmp_path / "out")
    _, reference = _rows_by_index(reference_args.output_dir)
    assert manifest["built"] == len(reference) and sorted(rows) == sorted(reference)
    for index, row in rows.items():
        assert row["messages"] == reference[index]["messages"]
        assert np.array_equal(np.asarray(row["images"][0]), np.asarray(reference[index]["images"][0]))


def test_low_yield_fails_loudly_with_counts(tmp_path):
    # One object per scene: nothing can be asked about pairs of objects, every sample is a typed skip.
    args = _args(tmp_path, min_objects=1, max_objects=1, num_samples=6, min_yield=0.5)
    with pytest.raises(YieldTooLowError, match="too_few_objects"):
        build(args)
    manifest = json.loads((tmp_path / "out" / "manifests" / "shard-000-of-001.json").read_text())
    assert manifest["built"] == 0 and manifest["skipped"] == {"too_few_objects": 6}


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    main(
        ["--source", "synthetic", "--num-samples", "3", "--seed", "1", "--output-dir", str(out), "--order", "reverse"]
    )
    assert "built" in capsys.readouterr().out
    ds = load_dataset(str(out), split="train")
    assert all(row["order"] == "reverse" for row in ds["provenance"])
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--source",
                "synthetic",
                "--num-samples",
                "2",
                "--output-dir",
                str(tmp_path / "bad"),
                "--min-objects",
                "1",
                "--max-objects",
                "1",
            ]
        )
    assert exit_info.value.code == 2


def test_arguments_are_validated(tmp_path):
    with pytest.raises(ValueError, match="shard_index"):
        _args(tmp_path, num_shards=2, shard_index=2)
    with pytest.raises(ValueError, match="input-dir"):
        MultiturnArguments(source="rgbd")
    with pytest.raises(ValueError, match="num-samples"):
        MultiturnArguments(source="synthetic")


class _RecordingApi:
    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))
        return "https://huggingface.co/datasets/org/name/commit/0"


def test_push_to_hub_uploads_the_local_layout(built, monkeypatch):
    args, _ = built
    api = _RecordingApi()
    monkeypatch.setattr(publishing, "HfApi", lambda token=None: api)
    publishing.push_to_hub(Path(args.output_dir), "org/name", private=True)
    (_, repo, create), (_, upload) = api.calls
    assert repo == "org/name" and create == {"repo_type": "dataset", "private": True, "exist_ok": True}
    assert upload["repo_type"] == "dataset" and Path(upload["folder_path"]) == Path(args.output_dir)
    from fnmatch import fnmatch

    local = [p.relative_to(args.output_dir).as_posix() for p in Path(args.output_dir).rglob("*") if p.is_file()]
    uploaded = [p for p in local if any(fnmatch(p, pattern) for pattern in upload["allow_patterns"])]
    assert "README.md" in uploaded and any(p.startswith("data/") for p in uploaded)
    assert not any(p.startswith(".progress") for p in uploaded)


def test_resume_refuses_a_directory_built_with_other_settings(tmp_path):
    build(_args(tmp_path, num_samples=3))
    with pytest.raises(ValueError, match="num_samples"):
        build(_args(tmp_path, num_samples=4))
