"""LLM question writer over any OpenAI-compatible chat-completions endpoint (GPT-4o as in the paper, or a local one).

SpatialBoost (arXiv 2603.22057, https://arxiv.org/abs/2603.22057) writes part of its multi-view VQA with GPT-4o. Here
the template writer states the facts (from depth and poses) and the LLM rewrites each question and answer in its
own words, returning JSON that is validated against a schema; an answer that drops the fact it must state is
rejected, so the geometry still decides every answer.

- Base URL, model and key come from arguments or the environment (`SPATIALBOOST_LLM_BASE_URL`,
  `SPATIALBOOST_LLM_MODEL`, `SPATIALBOOST_LLM_API_KEY`, falling back to `OPENAI_BASE_URL` and `OPENAI_API_KEY`).
  The key is sent in the `Authorization` header only: never in the cache key, the cache, logs, errors or `repr`.
  A base URL with credentials in it (`https://user:key@host`) is refused; the dataset card names the endpoint by its host.
- Every endpoint fault is retried with exponential backoff: 408, 429 and 5xx, timeouts, refused or dropped
  connections, truncated bodies, bodies that are not UTF-8 or not JSON, and replies that break the schema. No wait
  is longer than `max_delay_s` (30 s by default), a server's `Retry-After` included: the build never stalls on a
  server that asks for hours. When the last attempt fails, `rewrite_turns` turns it into a counted `llm_failed` skip
  and the build goes on (a dead endpoint then trips the build's `min_yield` check).
- Every valid reply is cached on disk under the SHA-256 of the request body, so a resumed build never pays twice.

Only the standard library (`urllib.request`, `json`) is used.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from .frames import SkipReason, SkipSample


REWRITE_SCHEMA = {
    "type": "object",
    "properties": {
        "turns": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
                "required": ["question", "answer"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["turns"],
    "additionalProperties": False,
}

_TYPES = {"object": dict, "array": list, "string": str, "number": (int, float), "integer": int, "boolean": bool}


def schema_errors(value, schema: dict, path: str = "$") -> list[str]:
    """Violations of the JSON-schema subset used here (type, properties, required, additionalProperties, items, enum)."""
    expected = _TYPES[schema["type"]]
    if not isinstance(value, expected) or (schema["type"] in ("number", "integer") and isinstance(value, bool)):
        return [f"{path}: expected {schema['type']}"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if schema["type"] == "object":
        properties = schema.get("properties", {})
        errors += [f"{path}: missing {key!r}" for key in schema.get("required", []) if key not in value]
        if schema.get("additionalProperties") is False:
            errors += [f"{path}: unexpected {key!r}" for key in value if key not in properties]
        for key, sub in properties.items():
            if key in value:
                errors += schema_errors(value[key], sub, f"{path}.{key}")
    if schema["type"] == "array" and "items" in schema:
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{path}[{i}]")
    return errors


class LLMWriterError(RuntimeError):
    """The endpoint failed for good (retries spent, or a request error such as 401 that retrying cannot fix)."""


def endpoint_settings(base_url: str | None = None, model: str | None = None) -> tuple[str, str]:
    """The endpoint's base URL (no trailing slash) and model: the arguments, else the environment (module docstring).

    Raises:
        ValueError: When either is missing, or the URL holds credentials (they belong in `SPATIALBOOST_LLM_API_KEY`).
    """
    base_url = (
        base_url or os.environ.get("SPATIALBOOST_LLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL") or ""
    ).rstrip("/")
    model = model or os.environ.get("SPATIALBOOST_LLM_MODEL") or ""
    if not base_url or not model:
        raise ValueError(
            "the LLM writer needs a base URL and a model (arguments, or SPATIALBOOST_LLM_BASE_URL and "
            "SPATIALBOOST_LLM_MODEL)"
        )
    if "@" in urllib.parse.urlsplit(base_url).netloc:
        # The URL lands in manifests and cards; a key inside it would be published. Its host alone is shown here.
        raise ValueError(
            f"the LLM base URL for {endpoint_host(base_url)} holds credentials; give the key in "
            "SPATIALBOOST_LLM_API_KEY instead (it is sent in the Authorization header only)"
        )
    return base_url, model


def endpoint_host(base_url: str) -> str:
    """The host (and port) of an endpoint URL: what may be shown of it (never user info, path or query)."""
    parts = urllib.parse.urlsplit(base_url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def writer_description(writer: str, base_url: str | None = None, model: str | None = None) -> str:
    """How a dataset card names its question writer: `template`, or the LLM's model and endpoint host (no secrets).

    Args:
        writer (`str`): `template` or `llm`.
        base_url (`str`, *optional*): The LLM endpoint (else the environment, as `LLMWriter` reads it).
        model (`str`, *optional*): The LLM (else the environment).
    """
    if writer == "template":
        return "template"
    base_url, model = endpoint_settings(base_url, model)
    return (
        f"LLM `{model}` at `{endpoint_host(base_url)}` (OpenAI-compatible), rewording the template's questions and "
        "answers; an answer that lost its fact was dropped"
    )


class LLMWriter:
    """Client of an OpenAI-compatible `/chat/completions` endpoint with JSON-schema output, retries and a cache.

    Args:
        cache_dir (`str` or `Path`): Where replies are cached (one JSON file per request hash).
        base_url (`str`, *optional*): E.g. `https://api.openai.com/v1` or `http://127.0.0.1:8000/v1`.
        model (`str`, *optional*): Model name, e.g. `gpt-4o`.
        api_key (`str`, *optional*): Bearer token; local servers may need none.
        timeout_s (`float`): Seconds per request.
        max_attempts (`int`): Attempts per request, retries included.
        backoff_s (`float`): First retry delay; doubled at each retry.
        max_delay_s (`float`): Longest wait between two attempts; a longer backoff or `Retry-After` is cut to it.
        sleep (`Callable[[float], None]`): Waits between retries (tests pass a recorder).
    """

    def __init__(
        self,
        cache_dir: str | Path,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_attempts: int = 5,
        backoff_s: float = 1.0,
        max_delay_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url, self.model = endpoint_settings(base_url, model)
        self._api_key = api_key or os.environ.get("SPATIALBOOST_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.cache_dir = Path(cache_dir)
        self.timeout_s, self.max_attempts, self.backoff_s = timeout_s, max_attempts, backoff_s
        self.max_delay_s, self.sleep = max_delay_s, sleep
        self.calls = 0  # HTTP requests sent (tests and manifests read it)

    def __repr__(self) -> str:
        return (
            f"LLMWriter(base_url={self.base_url!r}, model={self.model!r}, api_key={'***' if self._api_key else None})"
        )

    def complete_json(self, messages: list[dict], schema: dict, name: str = "answer") -> dict:
        """JSON object the model returns for `messages`, valid under `schema`; cached by the request.

        Raises:
            LLMWriterError: When every attempt failed (the last reason is in the message) or the request is refused.
        """
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": 0,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": True},
            },
        }
        # The request body holds no credentials, so its hash is a safe, stable cache key.
        encoded = json.dumps(body, sort_keys=True).encode()
        cached = self.cache_dir / f"{hashlib.sha256(encoded).hexdigest()}.json"
        if cached.exists():
            try:
                value = json.loads(cached.read_text())
            except (OSError, ValueError):  # a damaged cache file: ask again, and overwrite it
                value = None
            if value is not None and not schema_errors(value, schema):
                return value
        last, delay = "", 0.0
        for attempt in range(self.max_attempts):
            if attempt:
                self.sleep(delay)
            delay = min(self.backoff_s * 2**attempt, self.max_delay_s)
            try:
                reply = self._post(encoded)
            except _Retryable as error:
                last = str(error)
                if error.retry_after is not None:
                    delay = min(error.retry_after, self.max_delay_s)
                continue
            try:
                value = json.loads(reply["choices"][0]["message"]["content"])
            except (KeyError, IndexError, TypeError, json.JSONDecodeError) as error:
                last = f"reply is not JSON chat output: {error!r}"
                continue
            errors = schema_errors(value, schema)
            if errors:
                last = f"reply violates the schema: {'; '.join(errors[:3])}"
                continue
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(f".{cached.name}.tmp")
            tmp.write_text(json.dumps(value))
            os.replace(tmp, cached)
            return value
        raise LLMWriterError(f"{self.base_url}: no valid reply after {self.max_attempts} attempts ({last})")

    def _post(self, encoded: bytes) -> dict:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=encoded, headers=headers)
        self.calls += 1
        # Every way the exchange can break, except a refused request (4xx other than 408 and 429), is retryable.
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as error:
            if error.code in (408, 429) or error.code >= 500:
                raise _Retryable(f"HTTP {error.code}", retry_after_s(error.headers.get("Retry-After"))) from None
            raise LLMWriterError(f"{self.base_url}: HTTP {error.code} {error.reason}") from None
        except TimeoutError as error:
            raise _Retryable(f"timed out after {self.timeout_s} s", None) from error
        except urllib.error.URLError as error:
            raise _Retryable(f"connection failed: {error.reason}", None) from error
        except http.client.IncompleteRead as error:
            raise _Retryable(f"reply body truncated ({len(error.partial)} bytes read)", None) from error
        except (http.client.HTTPException, OSError) as error:  # RemoteDisconnected, resets, TLS errors mid-reply
            raise _Retryable(f"connection dropped: {error!r}", None) from error
        except UnicodeDecodeError as error:
            raise _Retryable(f"reply body is not UTF-8: {error}", None) from error
        except json.JSONDecodeError as error:
            raise _Retryable(f"reply body is not JSON: {error}", None) from error


def retry_after_s(value: str | None) -> float | None:
    """Seconds a `Retry-After` header asks to wait (delta-seconds or an HTTP date); `None` when absent or unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # HTTP dates are in GMT
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None):
        super().__init__(message)
        self.retry_after = retry_after


SYSTEM_PROMPT = (
    "You rewrite spatial questions and answers about several views of one scene. Keep every fact: the answer must "
    "contain the given key fact verbatim (numbers, view names, option letters). A false premise must still be "
    'rejected. Reply with JSON: {"turns": [{"question": ..., "answer": ...}]} in the same order.'
)


def rewrite_turns(writer: LLMWriter, turns: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """Rewrite `(question, answer, key fact)` triples in the model's words; the key fact must survive.

    Raises:
        SkipSample: `LLM_FAILED` when the endpoint gave no valid reply, `LLM_INCONSISTENT` when a rewritten answer
            drops its key fact or the number of turns changed (the geometry decides, not the model).
    """
    listed = "\n".join(
        f"{i + 1}. question: {q}\n   answer: {a}\n   key fact: {fact}" for i, (q, a, fact) in enumerate(turns)
    )
    messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": listed}]
    try:
        reply = writer.complete_json(messages, REWRITE_SCHEMA, name="rewritten_turns")
    except LLMWriterError as error:
        raise SkipSample(SkipReason.LLM_FAILED, str(error)) from error
    rewritten = reply["turns"]
    if len(rewritten) != len(turns):
        raise SkipSample(SkipReason.LLM_INCONSISTENT, f"{len(rewritten)} turns for {len(turns)}")
    for (_, _, fact), new in zip(turns, rewritten, strict=True):
        if fact.lower() not in new["answer"].lower():
            raise SkipSample(SkipReason.LLM_INCONSISTENT, f"rewritten answer lost {fact!r}")
    return [(new["question"], new["answer"]) for new in rewritten]
