"""LLM writer against a local OpenAI-compatible server on loopback: retries, schema checks, cache, secrecy, builder."""

from __future__ import annotations

import pytest
from datasets import load_dataset
from llm_server import FakeServer

from dataset_builders.frames import SkipReason, SkipSample
from dataset_builders.multiview_vqa import MultiviewVQAArguments, build
from dataset_builders.writers import REWRITE_SCHEMA, LLMWriter, LLMWriterError, rewrite_turns, schema_errors


SECRET = "sk-test-secret-123"
MESSAGES = [{"role": "user", "content": "hello"}]


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


def _writer(url, cache, sleeps, **kwargs) -> LLMWriter:
    return LLMWriter(
        cache, base_url=url, model="test-model", api_key=SECRET, timeout_s=0.3, sleep=sleeps.append, **kwargs
    )


def test_schema_errors_find_every_violation():
    assert schema_errors({"turns": [{"question": "q", "answer": "a"}]}, REWRITE_SCHEMA) == []
    assert schema_errors({"turns": [{"question": "q"}]}, REWRITE_SCHEMA) == ["$.turns[0]: missing 'answer'"]
    assert schema_errors({"turns": [], "x": 1}, REWRITE_SCHEMA) == ["$: unexpected 'x'"]
    assert schema_errors({"turns": [{"question": 1, "answer": "a"}]}, REWRITE_SCHEMA) == [
        "$.turns[0].question: expected string"
    ]


def test_retries_through_429_500_timeout_and_invalid_replies(server_factory, tmp_path):
    server = server_factory(["429", "500", "timeout", "invalid", "notjson", "ok"])
    sleeps = []
    writer = _writer(server.url, tmp_path / "cache", sleeps, max_attempts=6, backoff_s=0.01)
    reply = writer.complete_json(MESSAGES, REWRITE_SCHEMA)
    assert reply == {"turns": [{"question": "q", "answer": "a"}]}
    assert len(server.requests) == writer.calls == 6
    assert sleeps[0] == 7.0  # Retry-After of the 429 wins
    assert sleeps[1:] == [0.02, 0.04, 0.08, 0.16]  # then exponential backoff
    first = server.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == f"Bearer {SECRET}"
    assert first["body"]["response_format"]["json_schema"]["schema"] == REWRITE_SCHEMA
    assert first["body"]["model"] == "test-model"


def test_cache_prevents_repeat_calls_on_resume_and_never_holds_the_key(server_factory, tmp_path):
    server = server_factory([])
    writer = _writer(server.url, tmp_path / "cache", [])
    first = writer.complete_json(MESSAGES, REWRITE_SCHEMA)
    assert writer.complete_json(MESSAGES, REWRITE_SCHEMA) == first
    resumed = _writer(server.url, tmp_path / "cache", [])  # a new process resuming the build
    assert resumed.complete_json(MESSAGES, REWRITE_SCHEMA) == first
    assert len(server.requests) == 1
    resumed.complete_json([{"role": "user", "content": "other"}], REWRITE_SCHEMA)
    assert len(server.requests) == 2
    for path in (tmp_path / "cache").rglob("*"):
        assert SECRET not in path.read_text() and SECRET not in path.name
    assert SECRET not in repr(writer)


def test_failures_raise_without_the_key_and_skip_with_reasons(server_factory, tmp_path):
    server = server_factory([], default="500")
    sleeps = []
    writer = _writer(server.url, tmp_path / "cache", sleeps, max_attempts=3, backoff_s=0.01)
    with pytest.raises(LLMWriterError, match="HTTP 500") as caught:
        writer.complete_json(MESSAGES, REWRITE_SCHEMA)
    assert SECRET not in str(caught.value) and len(server.requests) == 3
    assert not (tmp_path / "cache").exists()  # nothing cached from a failure
    with pytest.raises(SkipSample) as skip:
        rewrite_turns(writer, [("q", "a 1.000 m", "1.000 m")])
    assert skip.value.reason is SkipReason.LLM_FAILED

    refused = server_factory([], default="401")
    writer = _writer(refused.url, tmp_path / "cache2", [], max_attempts=5)
    with pytest.raises(LLMWriterError, match="401"):
        writer.complete_json(MESSAGES, REWRITE_SCHEMA)
    assert len(refused.requests) == 1  # a refused request is not retried

    lossy = server_factory([], default="lossy")
    writer = _writer(lossy.url, tmp_path / "cache3", [])
    with pytest.raises(SkipSample) as skip:
        rewrite_turns(writer, [("How far?", "It is 1.234 m.", "1.234 m")])
    assert skip.value.reason is SkipReason.LLM_INCONSISTENT


def test_missing_endpoint_settings_are_a_clear_error(tmp_path, monkeypatch):
    for name in ("SPATIALBOOST_LLM_BASE_URL", "OPENAI_BASE_URL", "SPATIALBOOST_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="base URL and a model"):
        LLMWriter(tmp_path)
    monkeypatch.setenv("SPATIALBOOST_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("SPATIALBOOST_LLM_MODEL", "m")
    assert LLMWriter(tmp_path).model == "m"


def test_builder_with_llm_writer_keeps_facts_and_resumes_without_calls(server_factory, tmp_path, monkeypatch):
    server = server_factory([])
    monkeypatch.setenv("SPATIALBOOST_LLM_API_KEY", SECRET)
    common = dict(
        num_samples=4,
        image_width=320,
        image_height=240,
        view_mix="2:1",
        min_yield=0.0,
        writer="llm",
        llm_base_url=server.url,
        llm_model="test-model",
        llm_cache_dir=str(tmp_path / "cache"),
    )
    manifest = build(MultiviewVQAArguments(output_dir=str(tmp_path / "a"), **common))
    calls = len(server.requests)
    assert manifest["built"] >= 2 and calls == manifest["built"]
    rows = load_dataset(str(tmp_path / "a"), split="train")
    for row in rows:
        assert row["provenance"]["writer"] == "llm:test-model"
        answers = [m["content"][-1]["text"] for m in row["messages"][1::2]]
        assert all(a.startswith("Rewritten: ") for a in answers)
        distance = row["turns"][0]["answer"]
        assert distance in answers[0]
    # A fresh build directory with the same cache (a resumed or repeated build) sends no request.
    build(MultiviewVQAArguments(output_dir=str(tmp_path / "b"), **common))
    assert len(server.requests) == calls
    for path in [*(tmp_path / "a").rglob("*"), *(tmp_path / "cache").rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes()
