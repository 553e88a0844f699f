"""A local OpenAI-compatible chat-completions server on loopback, whose replies follow a script (for the LLM writer's
tests: retries, endpoint faults, cache, builder)."""

from __future__ import annotations

import json
import re
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeServer:
    """Chat-completions server whose replies follow a script, one action per request, then `default`:

    - "ok": a valid rewrite of the request's turns; "lossy": valid JSON that drops the facts; "invalid": JSON that
      breaks the schema; "notjson": chat content that is not JSON; "timeout": "ok", but later than the client waits.
    - "429" (with `Retry-After: 7`), "500", "401": that status.
    - endpoint faults: "drop" (the connection closes with no response), "truncate" (the body stops half-way),
      "nonutf8" (a body that is not UTF-8), "wait" (429 with `Retry-After: 100000`, 28 hours), "wait_date" (503 with
      a `Retry-After` date a day ahead).
    """

    def __init__(self, script: list[str], default: str = "ok"):
        self.script, self.default, self.requests = list(script), default, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                action = server.script.pop(0) if server.script else server.default
                if action == "drop":
                    return  # HTTP/1.0: the connection closes without a status line
                retry_after = {"429": "7", "wait": "100000", "wait_date": formatdate(time.time() + 86400, usegmt=True)}
                if action in ("429", "500", "401", "wait", "wait_date"):
                    self.send_response({"wait": 429, "wait_date": 503}.get(action) or int(action))
                    if action in retry_after:
                        self.send_header("Retry-After", retry_after[action])
                    self.end_headers()
                    return
                if action == "timeout":
                    time.sleep(0.6)
                content = {
                    "ok": lambda: json.dumps({"turns": server.rewrite(body)}),
                    "timeout": lambda: json.dumps({"turns": server.rewrite(body)}),
                    "truncate": lambda: json.dumps({"turns": server.rewrite(body)}),
                    "nonutf8": lambda: json.dumps({"turns": server.rewrite(body)}),
                    "invalid": lambda: json.dumps({"turns": [{"question": "q"}]}),
                    "notjson": lambda: "not json at all",
                    "lossy": lambda: json.dumps(
                        {"turns": [{"question": "q", "answer": "no idea"}] * server.count(body)}
                    ),
                }[action]()
                reply = {"choices": [{"message": {"role": "assistant", "content": content}}]}
                if action == "nonutf8":
                    # Latin-1 bytes (é as 0xE9) where the protocol promises UTF-8.
                    payload = json.dumps({**reply, "note": "café"}, ensure_ascii=False).encode("latin-1")
                else:
                    payload = json.dumps(reply).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload[: len(payload) // 2] if action == "truncate" else payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def count(body: dict) -> int:
        return len(re.findall(r"^\d+\. question:", body["messages"][-1]["content"], flags=re.M))

    @staticmethod
    def rewrite(body: dict) -> list[dict]:
        text = body["messages"][-1]["content"]
        questions = re.findall(r"^\d+\. question: (.*)$", text, flags=re.M)
        answers = re.findall(r"^   answer: (.*)$", text, flags=re.M)
        if not questions:
            return [{"question": "q", "answer": "a"}]
        return [
            {"question": f"Rephrased: {q}", "answer": f"Rewritten: {a}"}
            for q, a in zip(questions, answers, strict=True)
        ]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
