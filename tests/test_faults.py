"""Regression suite for faults: each test injects one bad input or fault and asserts the outcome (the skip reason and
its count, the retry count, the error text). Nothing here may kill or stall a build or a training run.

Sections: the LLM endpoint (a local OpenAI-compatible server on loopback), dataset cards, training-data validation,
checkpoint conversion.
"""

from __future__ import annotations

import ast
import functools
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset, Features, Image, Json, List, Value, load_dataset
from llm_server import FakeServer
from PIL import Image as PILImage
from safetensors.torch import load_file, save_file
from transformers import DINOv3ViTConfig, DINOv3ViTModel
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from dataset_builders import multiturn, multiview_vqa
from dataset_builders.frames import SkipReason, SkipSample, clean_depth, decode_image
from dataset_builders.multiview_vqa import MultiviewVQAArguments
from dataset_builders.perception import DepthPrediction, Perception
from dataset_builders.sources import HubImageSource, ImageFolderSource, RGBDSource
from dataset_builders.spatial import Thresholds
from dataset_builders.writers import REWRITE_SCHEMA, LLMWriter, LLMWriterError, rewrite_turns
from modeling_spatialboost.convert_to_spatialboost import main as convert_main
from spatialboost.tiny import FEATURES, build_tokenizer, dataset_texts, tiny_dataset, tiny_vlm
from spatialboost.training import (
    RowProblem,
    SpatialBoostDataArguments,
    SpatialBoostSFTConfig,
    training_dataset,
    validate_dataset,
)


SECRET = "sk-test-secret-123"
MESSAGES = [{"role": "user", "content": "hello"}]
TURN = [("How far?", "It is 1.234 m.", "1.234 m")]


# -- the LLM endpoint --------------------------------------------------------------------------------------------


@pytest.fixture
def server_factory():
    """Starts `FakeServer(script, default)`s; shuts them down after the test."""
    servers = []

    def make(script, default="ok"):
        servers.append(FakeServer(script, default))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def recording_sleep(sleeps: list[float], real: bool = True):
    """A `sleep` for `LLMWriter` that records each wait (and waits, when `real`)."""

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if real:
            time.sleep(seconds)

    return sleep


def llm_writer(url, cache, sleeps, real_sleep=True, **kwargs) -> LLMWriter:
    options = {"timeout_s": 2.0, "backoff_s": 0.01, **kwargs}
    return LLMWriter(
        cache, base_url=url, model="test-model", api_key=SECRET, sleep=recording_sleep(sleeps, real_sleep), **options
    )


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("drop", "connection dropped"), ("truncate", "reply body truncated"), ("nonutf8", "reply body is not UTF-8")],
)
def test_endpoint_fault_is_retried_then_a_counted_llm_failed_skip(server_factory, tmp_path, fault, reason):
    started = time.monotonic()
    # Two faults, then a good reply: the third attempt succeeds.
    server = server_factory([fault, fault])
    sleeps = []
    writer = llm_writer(server.url, tmp_path / "cache", sleeps, max_attempts=3)
    assert rewrite_turns(writer, TURN) == [("Rephrased: How far?", "Rewritten: It is 1.234 m.")]
    assert len(server.requests) == writer.calls == 3 and sleeps == [0.01, 0.02]

    # The fault on every attempt: retried max_attempts times, then an error naming it, then an llm_failed skip.
    server = server_factory([], default=fault)
    sleeps = []
    writer = llm_writer(server.url, tmp_path / "cache2", sleeps, max_attempts=4)
    with pytest.raises(LLMWriterError, match=f"no valid reply after 4 attempts \\({reason}") as caught:
        writer.complete_json(MESSAGES, REWRITE_SCHEMA)
    assert SECRET not in str(caught.value)
    assert len(server.requests) == writer.calls == 4 and sleeps == [0.01, 0.02, 0.04]
    with pytest.raises(SkipSample) as skip:
        rewrite_turns(writer, TURN)
    assert skip.value.reason is SkipReason.LLM_FAILED and reason in str(skip.value)
    assert len(server.requests) == 8
    assert not (tmp_path / "cache2").exists()  # nothing cached from a failure
    assert time.monotonic() - started < 10


def test_huge_retry_after_is_capped(server_factory, tmp_path):
    # Retry-After: 100000 (28 hours) and an HTTP date a day ahead are both cut to max_delay_s (30 s by default).
    server = server_factory(["wait", "wait_date"])
    sleeps = []
    writer = llm_writer(server.url, tmp_path / "cache", sleeps, real_sleep=False)
    assert writer.complete_json(MESSAGES, REWRITE_SCHEMA) == {"turns": [{"question": "q", "answer": "a"}]}
    assert sleeps == [30.0, 30.0] and len(server.requests) == 3

    # Real waits with a small cap: a server that always asks for 28 hours costs milliseconds, then llm_failed.
    server = server_factory([], default="wait")
    sleeps = []
    writer = llm_writer(server.url, tmp_path / "cache2", sleeps, max_attempts=3, max_delay_s=0.05)
    started = time.monotonic()
    with pytest.raises(SkipSample) as skip:
        rewrite_turns(writer, TURN)
    assert time.monotonic() - started < 5
    assert skip.value.reason is SkipReason.LLM_FAILED and "HTTP 429" in str(skip.value)
    assert sleeps == [0.05, 0.05] and len(server.requests) == writer.calls == 3


def test_damaged_reply_cache_is_asked_again(server_factory, tmp_path):
    server = server_factory([])
    writer = llm_writer(server.url, tmp_path / "cache", [])
    first = writer.complete_json(MESSAGES, REWRITE_SCHEMA)
    (cached,) = (tmp_path / "cache").iterdir()
    cached.write_text('{"turns": [')  # a torn write, e.g. a full disk
    assert writer.complete_json(MESSAGES, REWRITE_SCHEMA) == first and len(server.requests) == 2
    assert json.loads(cached.read_text()) == first  # repaired


def test_base_url_with_credentials_is_refused_without_echoing_them(tmp_path):
    with pytest.raises(ValueError, match="holds credentials") as caught:
        LLMWriter(tmp_path, base_url=f"https://user:{SECRET}@api.example.com/v1", model="m")
    assert SECRET not in str(caught.value) and "api.example.com" in str(caught.value)


# The first sample that reaches the writer meets five different faults (every attempt fails): one llm_failed skip.
BUILD_FAULTS = ["drop", "truncate", "nonutf8", "wait", "wait_date"]


@pytest.fixture(scope="module")
def llm_builds(tmp_path_factory):
    """A 6-sample multi-view VQA build with the LLM writer whose first sample meets `BUILD_FAULTS`, and the same build
    with the template writer (which samples reach the writer does not depend on it)."""
    root = tmp_path_factory.mktemp("llm-build")
    server = FakeServer(list(BUILD_FAULTS))
    common = dict(num_samples=6, image_width=320, image_height=240, view_mix="2:1", min_yield=0.0)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SPATIALBOOST_LLM_API_KEY", SECRET)
            # The build's writer with the real retry policy, only faster: waits of at most 10 ms.
            patch.setattr(multiview_vqa, "LLMWriter", functools.partial(LLMWriter, backoff_s=0.001, max_delay_s=0.01))
            started = time.monotonic()
            llm = multiview_vqa.build(
                MultiviewVQAArguments(
                    output_dir=str(root / "llm"),
                    writer="llm",
                    llm_base_url=server.url,
                    llm_model="test-model",
                    **common,
                )
            )
            seconds = time.monotonic() - started
        template = multiview_vqa.build(MultiviewVQAArguments(output_dir=str(root / "template"), **common))
        yield {
            "root": root,
            "llm": llm,
            "template": template,
            "requests": list(server.requests),
            "url": server.url,
            "seconds": seconds,
        }
    finally:
        server.close()


@pytest.mark.slow
def test_endpoint_faults_in_a_build_become_one_counted_skip_and_the_build_goes_on(llm_builds):
    llm, template = llm_builds["llm"], llm_builds["template"]
    assert template["built"] >= 3
    assert llm["skipped"] == {**template["skipped"], "llm_failed": 1}
    assert llm["built"] == template["built"] - 1
    assert len(llm_builds["requests"]) == llm["built"] + len(BUILD_FAULTS)  # 5 attempts, then one per sample
    built = load_dataset(str(llm_builds["root"] / "llm"), split="train")["provenance"]
    reference = load_dataset(str(llm_builds["root"] / "template"), split="train")["provenance"]
    assert [row["index"] for row in built] == [row["index"] for row in reference][1:]  # the first one was skipped
    assert {row["writer"] for row in built} == {"llm:test-model"}
    assert llm_builds["seconds"] < 60  # no wait of hours, whatever Retry-After said


# -- dataset cards -----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_card_states_the_writer_used(llm_builds):
    port = llm_builds["url"].split(":")[2].split("/")[0]
    card = (llm_builds["root"] / "llm" / "README.md").read_text()
    assert f"Writer: LLM `test-model` at `127.0.0.1:{port}` (OpenAI-compatible)" in card
    assert "Writer: template" not in card and SECRET not in card
    assert "Writer: template." in (llm_builds["root"] / "template" / "README.md").read_text()


# -- training-data validation ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    """A tiny dataset (1- and 2-view rows) and the processor of a tiny VLM that reads it."""
    dataset = tiny_dataset(4, views=(1, 2), image_size=32)
    _, processor = tiny_vlm(build_tokenizer(dataset_texts(dataset)))
    return dataset, processor


def png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_corrupt_image_bytes_are_named_before_training_or_skipped(tiny):
    dataset, processor = tiny
    single, double = dataset[0], dataset[1]
    garbage = {**single, "images": [{"bytes": b"not an image at all", "path": None}]}
    truncated = {
        **double,
        "images": [double["images"][0], {"bytes": png_bytes(double["images"][1])[:60], "path": None}],
    }
    bad = Dataset.from_list([single, garbage, truncated, double], features=FEATURES)
    with pytest.raises(ValueError) as error:
        validate_dataset(bad, processor, max_length=None)
    message = str(error.value)
    assert "2 of 4 rows are bad ({'corrupt image': 2})" in message
    assert "row 1: corrupt image: images[0] is not an image Pillow can read" in message
    assert "row 2: corrupt image: images[1] does not decode (" in message
    kept, report = validate_dataset(bad, processor, max_length=None, on_bad_rows="skip")
    assert report.counts == {RowProblem.CORRUPT_IMAGE.value: 2}
    assert kept["sample_id"] == [single["sample_id"], double["sample_id"]]


def test_plain_string_content_is_read_as_trl_reads_it(tiny):
    """A plain-string `content` (which the chat template accepts) validates as TRL's collator reads it: the images go
    before the first user message's text, and the validated length is the collated length."""
    dataset, processor = tiny
    row = dataset[1]  # 2 views
    plain = {
        "images": row["images"],
        "messages": [
            {"role": m["role"], "content": "".join(p["text"] for p in m["content"] if p["type"] == "text")}
            for m in row["messages"]
        ],
    }
    features = Features(
        {"images": List(Image()), "messages": List({"role": Value("string"), "content": Value("string")})}
    )
    one = Dataset.from_list([plain], features=features)
    batch = DataCollatorForVisionLanguageModeling(processor, assistant_only_loss=True)([dict(one[0])])
    length = batch["input_ids"].shape[1]
    assert (batch["labels"] != -100).any()  # the answers are trained on
    assert validate_dataset(one, processor, max_length=length)[1].bad_rows == {}
    with pytest.raises(ValueError, match=f"too long: {length} tokens > max_length {length - 1}"):
        validate_dataset(one, processor, max_length=length - 1)


def test_message_shape_problems_name_the_row_and_the_message(tiny):
    dataset, processor = tiny
    single = dataset[0]
    answer = {"role": "assistant", "content": [{"type": "text", "text": "It is 1 m."}]}
    rows = [
        {"images": single["images"], "messages": single["messages"]},
        {"images": [], "messages": {"role": "user", "content": "a dict, not a list"}},
        {"images": [], "messages": [{"role": "user", "content": None}, answer]},
        {"images": [], "messages": [{"role": "bot", "content": "hi"}, answer]},
        {"images": [], "messages": [{"role": "user", "content": [{"type": "text", "text": None}]}, answer]},
        {"images": [], "messages": [{"role": "user", "content": [{"kind": "image"}]}, answer]},
    ]
    bad = Dataset.from_list(rows, features=Features({"images": List(Image()), "messages": Json()}))
    with pytest.raises(ValueError) as error:
        validate_dataset(bad, processor, max_length=None)
    message = str(error.value)
    assert "5 of 6 rows are bad ({'bad messages': 5})" in message and "row 0" not in message
    assert "row 1: bad messages: `messages` is a dict, not a list of {role, content} messages" in message
    assert "row 2: bad messages: messages[0] (user) has content NoneType, not a string or a list" in message
    assert "row 3: bad messages: messages[0] has role 'bot', not one of system, user, assistant, tool" in message
    assert "row 4: bad messages: messages[0].content[0] is a text part without text" in message
    assert "row 5: bad messages: messages[0].content[0] is not a text or image part" in message


@pytest.mark.parametrize(
    ("features", "value", "expected"),
    [
        (
            {"messages": Value("string")},
            lambda row: json.dumps(row["messages"]),
            r"column `messages` is Value\('string'\): one value per row, not a list of \{role, content\} messages "
            r"\(JSON text\? parse it with json.loads first\)",
        ),
        ({"images": Image()}, lambda row: row["images"][0], r"column `images` is Image\(.*\), not a list of images"),
        ({"images": List(Value("string"))}, lambda row: ["a.png"], r"column `images` is List\(Value\('string'\)\)"),
    ],
    ids=["messages-json-string", "images-single", "images-paths"],
)
def test_a_column_of_the_wrong_type_is_named(tiny, features, value, expected):
    dataset, processor = tiny
    (column,) = features
    row = {"images": dataset[0]["images"], "messages": dataset[0]["messages"]}
    row[column] = value(row)
    others = {"images": List(Image()), "messages": FEATURES["messages"]}
    bad = Dataset.from_list([row] * 2, features=Features({**others, **features}))
    for on_bad_rows in ("raise", "skip"):  # every row is affected: skipping cannot help
        with pytest.raises(ValueError, match=f"cannot be trained on \\(every row is affected\\):\n  {expected}"):
            validate_dataset(bad, processor, max_length=None, on_bad_rows=on_bad_rows)


def test_every_row_skipped_stops_with_the_counts_by_kind(tiny, tmp_path):
    dataset, processor = tiny
    single, double = dataset[0], dataset[1]
    rows = [
        {**single, "images": [{"bytes": b"garbage", "path": None}]},
        {**double, "images": [None, None]},
        {**single, "images": [{"bytes": b"", "path": str(tmp_path / "gone.png")}]},
        {**double, "images": [{"bytes": b"\x89PNG\r\n", "path": None}] * 2},
    ]
    Dataset.from_list(rows, features=FEATURES).to_parquet(str(tmp_path / "bad" / "train.parquet"))
    data_args = SpatialBoostDataArguments(dataset_names=[str(tmp_path / "bad")], on_bad_rows="skip")
    training_args = SpatialBoostSFTConfig(
        output_dir=str(tmp_path / "run"), use_cpu=True, report_to="none", activation_checkpointing=False
    )
    with pytest.raises(ValueError) as error:
        training_dataset(data_args, processor, training_args)  # what every recipe calls before SFTTrainer
    assert str(error.value).startswith(
        "No rows left to train on: all 4 rows failed validation and were skipped "
        "(by kind: {'corrupt image': 2, 'missing image': 2})."
    )
    with pytest.raises(ValueError, match="The dataset has no rows to train on"):
        validate_dataset(dataset.select([]), processor, max_length=None, on_bad_rows="skip")


# -- checkpoint conversion ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory):
    """A tiny DINOv3 base checkpoint folder, and its tensors."""
    torch.manual_seed(0)
    config = DINOv3ViTConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        patch_size=8,
        image_size=32,
        num_register_tokens=2,
        pos_embed_rescale=None,
    )
    folder = tmp_path_factory.mktemp("convert") / "base"
    DINOv3ViTModel(config).save_pretrained(folder)
    return folder, load_file(folder / "model.safetensors")


def convert_fails(argv: list[str]) -> str:
    """`spatialboost-convert argv`'s error line (it must exit, with a message, and write nothing)."""
    with pytest.raises(SystemExit) as exited:
        convert_main(argv)
    assert isinstance(exited.value.code, str)  # sys.exit(message): printed to stderr, exit status 1
    assert not Path(argv[1]).exists()
    assert "\n" not in exited.value.code
    return exited.value.code


def with_tensors(folder: Path, tensors: dict, target: Path) -> Path:
    shutil.copytree(folder, target)
    save_file(tensors, target / "model.safetensors", metadata={"format": "pt"})
    return target


Q_PROJ = "layer.0.attention.q_proj.weight"


def test_incomplete_checkpoint_is_refused(base_checkpoint, tmp_path):
    folder, tensors = base_checkpoint
    missing = with_tensors(folder, {k: v for k, v in tensors.items() if k != Q_PROJ}, tmp_path / "missing")
    message = convert_fails([str(missing), str(tmp_path / "out")])
    assert message == (
        f"spatialboost-convert: error: {missing}: incomplete checkpoint: 1 tensors missing (model.{Q_PROJ})"
    )
    wrong = with_tensors(folder, {**tensors, Q_PROJ: torch.zeros(16, 32)}, tmp_path / "shape")
    assert f"{wrong}: 1 tensors of the wrong shape for config.json (model.{Q_PROJ} [16, 32] for [32, 32])" in (
        convert_fails([str(wrong), str(tmp_path / "out")])
    )
    # A sharded checkpoint whose index names a shard that is not there.
    sharded = tmp_path / "sharded"
    DINOv3ViTModel.from_pretrained(folder).save_pretrained(sharded, max_shard_size="20KB")
    shards = sorted(sharded.glob("model-*.safetensors"))
    assert len(shards) > 1
    shards[-1].unlink()
    message = convert_fails([str(sharded), str(tmp_path / "out")])
    assert message == (
        f"spatialboost-convert: error: {sharded}: incomplete checkpoint: {shards[-1].name}, listed in "
        "model.safetensors.index.json, missing"
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_weights_are_refused(base_checkpoint, tmp_path, value):
    folder, tensors = base_checkpoint
    poisoned = tensors[Q_PROJ].clone()
    poisoned[3, 5] = value
    bad = with_tensors(folder, {**tensors, Q_PROJ: poisoned}, tmp_path / "bad")
    assert convert_fails([str(bad), str(tmp_path / "out")]) == (
        f"spatialboost-convert: error: {bad}: non-finite weights (NaN or Inf) in 1 tensors (model.{Q_PROJ})"
    )


@pytest.mark.parametrize(
    ("damage", "detail"),
    [
        (lambda data: data[: len(data) - 100], "incomplete metadata, file not fully covered"),
        (lambda data: b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}" + data[18:], "invalid JSON in header"),
    ],
    ids=["truncated", "corrupt-header"],
)
def test_unreadable_safetensors_file_is_named(base_checkpoint, tmp_path, damage, detail):
    folder, _ = base_checkpoint
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    (bad / "model.safetensors").write_bytes(damage((folder / "model.safetensors").read_bytes()))
    message = convert_fails([str(bad), str(tmp_path / "out")])
    assert message.startswith(
        f"spatialboost-convert: error: {bad}: model.safetensors is not a readable safetensors file, corrupt or "
        "truncated (Error while deserializing header: "
    )
    assert detail in message and message.endswith("; download it again")


def test_duplicate_layers_are_refused(base_checkpoint, tmp_path):
    folder, _ = base_checkpoint
    assert convert_fails([str(folder), str(tmp_path / "out"), "--layers", "1", "0", "1"]) == (
        f"spatialboost-convert: error: {folder}: layers [1] are given more than once in boost_layers (--layers) "
        "[1, 0, 1]"
    )


@pytest.mark.parametrize("base", ["./no-such-checkpoint", "/no/such/checkpoint", "~/no-such-checkpoint", "a/b/c"])
def test_local_path_that_does_not_exist_says_so(tmp_path, base):
    assert convert_fails([base, str(tmp_path / "out")]) == f"spatialboost-convert: error: {base}: no such folder"


def test_hub_id_that_cannot_be_loaded_is_named(tmp_path):
    base = "spatialboost-tests/no-such-model"  # offline in the tests: the Hub cannot be reached
    assert convert_fails([base, str(tmp_path / "out")]).startswith(
        f"spatialboost-convert: error: {base}: not a local folder, and it could not be loaded from the Hub: "
    )


@pytest.mark.slow
def test_convert_error_is_one_line_and_a_nonzero_exit(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "modeling_spatialboost.convert_to_spatialboost", "./no-such-checkpoint", "out"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        timeout=300,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip().splitlines()[-1] == "spatialboost-convert: error: ./no-such-checkpoint: no such folder"
    )
    assert not (tmp_path / "out").exists()


# -- published artefacts -----------------------------------------------------------------------------------------

REMOTE_CODE = Path(__file__).parents[1] / "modeling_spatialboost"
REMOTE_CODE_FILES = [
    "configuration_spatialboost.py",
    "modeling_spatialboost.py",
    "configuration_spatialboost_vlm.py",
    "modeling_spatialboost_vlm.py",
]
# What would let a downloaded checkpoint run code: unpickling, evaluating text, starting processes, fetching more.
FORBIDDEN_MODULES = {"pickle", "dill", "joblib", "marshal", "shelve", "subprocess", "socket", "ctypes", "importlib"}
FORBIDDEN_MODULES |= {"runpy", "requests", "urllib", "http"}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "torch.load", "os.system", "os.popen", "os.execv"}


def test_remote_code_reads_safetensors_only_and_runs_nothing_else(base_checkpoint, tmp_path):
    folder, _ = base_checkpoint
    convert_main([str(folder), str(tmp_path / "out")])  # a clean checkpoint still converts
    weights = {path.name for path in (tmp_path / "out").iterdir() if path.suffix not in (".py", ".json", ".md")}
    assert weights == {"model.safetensors"}
    for name in REMOTE_CODE_FILES:
        for node in ast.walk(ast.parse((REMOTE_CODE / name).read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not {module.split(".")[0] for module in modules} & FORBIDDEN_MODULES, (name, modules)
            if isinstance(node, ast.Call):
                assert ast.unparse(node.func) not in FORBIDDEN_CALLS, (name, ast.unparse(node))


# -- image files that are not images ---------------------------------------------------------------------------


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height` (1-bit greyscale) followed by an empty image: what a
    decompression bomb or a huge scan looks like before any pixel is decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [20_000, 100_000])
def test_huge_image_headers_are_counted_as_too_large_not_corrupt(side):

    with pytest.raises(SkipSample) as caught:
        decode_image(png_header(side, side), min_side=32, max_pixels=40_000_000)
    assert caught.value.reason is SkipReason.IMAGE_TOO_LARGE


def good_jpeg(path: Path) -> Path:

    PILImage.new("RGB", (64, 48), (120, 80, 40)).save(path)
    return path


def test_image_folder_lists_only_files(tmp_path):

    good_jpeg(tmp_path / "photo.jpg")
    (tmp_path / "album.jpg").mkdir()  # a folder named like an image
    (tmp_path / "gone.png").symlink_to(tmp_path / "deleted.png")  # a broken link
    good_jpeg(tmp_path / "target.jpg")
    (tmp_path / "link.jpg").symlink_to(tmp_path / "target.jpg")  # a working link is an image
    source = ImageFolderSource(tmp_path, Thresholds())
    assert [p.name for p in source.files] == ["link.jpg", "photo.jpg", "target.jpg"]
    assert source.load(1).image.size == (64, 48)


def test_image_that_vanishes_after_listing_is_a_counted_skip(tmp_path):

    source = ImageFolderSource(tmp_path, Thresholds())
    source.files = [tmp_path / "listed-then-deleted.jpg"]
    with pytest.raises(SkipSample) as caught:
        source.load(0)
    assert caught.value.reason is SkipReason.MISSING_FILE


def test_redwood_colour_folder_skips_folders_named_like_images(tmp_path):

    redwood = Path(__file__).resolve().parents[2] / "shared" / "data" / "rgbd" / "redwood"
    if not redwood.is_dir():
        pytest.skip(f"{redwood} is not here")
    copy = shutil.copytree(redwood, tmp_path / "redwood")
    expected = len(list((copy / "color").iterdir()))
    (copy / "color" / "album.jpg").mkdir()
    (copy / "color" / "broken.jpg").symlink_to(copy / "nothing.jpg")
    source = RGBDSource.from_redwood(copy, Thresholds())
    assert len(source) == expected
    assert all(frame.color.is_file() for frame in source.frames)


def test_hub_cells_without_an_image_are_counted_skips(tmp_path):

    image_path = good_jpeg(tmp_path / "ok.jpg")
    dataset = Dataset.from_dict(
        {"image": [str(image_path), None, str(tmp_path / "missing.jpg")]}, features=Features({"image": Image()})
    )
    source = HubImageSource(dataset, "image", Thresholds(), name="org/photos")
    assert source.load(0).image.size == (64, 48)
    for index in (1, 2):
        with pytest.raises(SkipSample) as caught:
            source.load(index)
        assert caught.value.reason is SkipReason.MISSING_FILE


def test_a_depth_estimate_without_valid_pixels_is_a_counted_skip_and_the_batch_goes_on(tmp_path, monkeypatch):

    class FakeDepth:  # the depth backend's interface; the 50-pixel-wide image gets an estimate with no valid pixel
        model_id, revision, role = "fake/depth", "main", "depth"

        def __call__(self, images):
            return [
                DepthPrediction(np.full(i.size[::-1], 0.0 if i.width == 50 else 2.0, np.float32), 500.0)
                for i in images
            ]

    for name, width in [("a.png", 64), ("b.png", 50), ("c.png", 64)]:
        PILImage.new("RGB", (width, 48), (90, 120, 150)).save(tmp_path / name)
    monkeypatch.setattr(multiturn, "make_perception", lambda args: Perception(depth=FakeDepth()))
    args = multiturn.MultiturnArguments(
        source="image_folder", input_dir=str(tmp_path), output_dir=str(tmp_path / "out")
    )
    builder = multiturn.MultiturnBuilder(args, Thresholds())
    outcomes = list(builder.examples(range(3)))  # one perception batch holds all three
    assert len(outcomes) == 3
    skips = [o.reason for o in outcomes if isinstance(o, SkipSample)]
    assert skips.count(SkipReason.INSUFFICIENT_VALID_DEPTH) == 1


def test_unloadable_perception_model_is_one_clear_error_naming_it(tmp_path):
    redwood = Path(__file__).resolve().parents[2] / "shared" / "data" / "rgbd" / "redwood"
    if not redwood.is_dir():
        pytest.skip(f"{redwood} is not here")
    missing = str(tmp_path / "no-such-segmenter")
    command = [sys.executable, "-m", "dataset_builders.multiturn", "--source", "rgbd", "--input-dir", str(redwood)]
    command += ["--output-dir", str(tmp_path / "out"), "--segmenter-model", missing, "--num-samples", "2"]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert missing in result.stderr and "--segmenter depth_clusters" in result.stderr


def test_transposed_depth_map_is_named_in_one_size_convention():

    with pytest.raises(SkipSample) as caught:
        clean_depth(np.ones((640, 480), np.float32), (640, 480), 0.1)  # (W, H) array for a 640x480 image
    assert caught.value.reason is SkipReason.DEPTH_SHAPE_MISMATCH
    assert "depth map is 480x640, image is 640x480 (W x H) (transposed?)" in str(caught.value)


# -- soak: a long build with a bad input in every ten ------------------------------------------------------------


def write_annotated_frame(frame, folder: Path) -> None:
    """A synthetic frame in the layout of `../shared/data/annotated/`: colour, depth in mm, instances, camera, objects."""
    folder.mkdir(parents=True)
    frame.image.save(folder / "color.jpg", quality=90)
    PILImage.fromarray(np.round(np.nan_to_num(frame.depth) * 1000).astype(np.uint16)).save(folder / "depth.png")
    ids = np.zeros(frame.depth.shape, np.uint16)
    for number, instance in enumerate(frame.instances, start=1):
        ids[instance.mask] = number
    PILImage.fromarray(ids).save(folder / "instances.png")
    k = frame.intrinsics
    camera = {"fx": k.fx, "fy": k.fy, "cx": k.cx, "cy": k.cy, "up_camera": [float(x) for x in frame.up_camera]}
    (folder / "camera.json").write_text(json.dumps(camera))
    objects = [{"id": number, "category": inst.category} for number, inst in enumerate(frame.instances, start=1)]
    (folder / "objects.json").write_text(json.dumps(objects))


def _rewrite_png(path: Path, change) -> None:
    path.write_bytes(png_bytes(PILImage.fromarray(change(np.asarray(PILImage.open(path))))))


def _replace_with_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _replace_with_broken_link(path: Path) -> None:
    path.unlink()
    path.symlink_to(path.parent / "nowhere.jpg")


# One bad input of each kind the annotated RGB-D layout can meet, and the skip reason it must be counted under.
SOAK_FAULTS = [
    ("color.jpg", lambda p: p.write_bytes(p.read_bytes()[:200]), SkipReason.CORRUPT_IMAGE),
    ("color.jpg", _replace_with_folder, SkipReason.MISSING_FILE),
    ("color.jpg", _replace_with_broken_link, SkipReason.MISSING_FILE),
    ("color.jpg", lambda p: p.write_bytes(png_header(20_000, 20_000)), SkipReason.IMAGE_TOO_LARGE),
    ("depth.png", lambda p: _rewrite_png(p, np.zeros_like), SkipReason.INSUFFICIENT_VALID_DEPTH),
    ("depth.png", lambda p: _rewrite_png(p, lambda a: np.ascontiguousarray(a.T)), SkipReason.DEPTH_SHAPE_MISMATCH),
    ("depth.png", Path.unlink, SkipReason.MISSING_FILE),
    ("camera.json", lambda p: p.write_text(p.read_text()[:-9]), SkipReason.CORRUPT_CAMERA),
    ("instances.png", lambda p: _rewrite_png(p, lambda a: a[:-8]), SkipReason.MASK_SHAPE_MISMATCH),
    ("objects.json", lambda p: p.write_text('{"id": 1}'), SkipReason.CORRUPT_ANNOTATION),
]


@pytest.mark.slow
def test_soak_build_with_every_tenth_input_bad_keeps_exactly_the_good_samples(tmp_path):
    """1,000 real-layout frames, every 10th damaged in one of ten ways, built with 2 worker processes: the build
    ends with exactly the rows of the undamaged frames (as a build of the same frames undamaged makes them), each
    fault counted once under its reason, and the result loads with `load_dataset`."""
    from dataset_builders.multiturn import MultiturnArguments, build
    from dataset_builders.sources import SyntheticSource

    def run(input_dir: Path, output_dir: Path, num_samples: int) -> tuple[dict, dict]:
        args = MultiturnArguments(
            source="rgbd",
            rgbd_layout="annotated",
            input_dir=str(input_dir),
            output_dir=str(output_dir),
            num_samples=num_samples,
            num_proc=2,
            samples_per_chunk=50,
            min_yield=0.5,
        )
        manifest = build(args)
        rows = load_dataset(str(output_dir), split="train")
        return manifest, {row["provenance"]["sample_id"]: row for row in rows}

    # Frames that build: synthetic scenes written in the annotated layout, kept when a clean build makes a row.
    num_frames, candidates = 1000, tmp_path / "candidates"
    synthetic = SyntheticSource(seed=11, num_samples=1250, image_size=(192, 144))
    for index in range(len(synthetic)):
        write_annotated_frame(synthetic.load(index), candidates / f"candidate-{index:04d}")
    _, built = run(candidates, tmp_path / "out-candidates", len(synthetic))
    assert len(built) >= num_frames
    clean, damaged = tmp_path / "clean", tmp_path / "damaged"
    for index, name in enumerate(sorted(built)[:num_frames]):
        shutil.copytree(candidates / name, clean / f"frame-{index:04d}")
    shutil.copytree(clean, damaged)
    injected: dict[str, int] = {}
    for index in range(9, num_frames, 10):
        name, damage, reason = SOAK_FAULTS[(index // 10) % len(SOAK_FAULTS)]
        damage(damaged / f"frame-{index:04d}" / name)
        injected[reason.value] = injected.get(reason.value, 0) + 1

    reference_manifest, reference = run(clean, tmp_path / "out-clean", num_frames)
    manifest, rows = run(damaged, tmp_path / "out-damaged", num_frames)

    assert len(reference) == num_frames and reference_manifest["skipped"] == {}
    good = {f"frame-{index:04d}" for index in range(num_frames) if index % 10 != 9}
    assert set(rows) == good
    assert manifest["skipped"] == injected and set(injected) == {reason.value for *_, reason in SOAK_FAULTS}
    assert manifest["built"] == len(good) and manifest["attempted"] == num_frames
    for sample_id, row in rows.items():
        assert row["messages"] == reference[sample_id]["messages"], sample_id
        assert row["images"][0].tobytes() == reference[sample_id]["images"][0].tobytes(), sample_id
