"""A local OpenAI-compatible Chat Completions server for tests: scripted replies, recorded requests.

It listens on 127.0.0.1 on a free port, in a background thread, so tests exercise the real `openai` client
(HTTP, retries, parsing) and the Agents SDK's chat-completions path without any network. Shared by the
harness and judge tests; keep the API below stable.

Usage (the `openai_stub` fixture in conftest.py starts and stops one per test)::

    from openai_stub import OpenAIStub, by_turn, error, text, tool_call

    with OpenAIStub() as stub:                       # or: def test_x(openai_stub): ...
        stub.script(error(429, retry_after=0), text("hello"))   # consumed in order, one per request
        client = AsyncOpenAI(base_url=stub.base_url, api_key="test")
        ...
        assert stub.requests[-1].body["model"] == "m"

How a reply is chosen for each `POST /v1/chat/completions` (first match wins):
1. the queue of the request's model (`stub.script(..., model="m")`),
2. the shared queue (`stub.script(...)`),
3. `stub.responder(body) -> Reply` if set (e.g. `by_turn([...])`, stateless, safe for concurrent conversations),
4. `stub.default` (a plain "Done." message unless replaced).
A reply is used once unless made sticky with `.forever()` (e.g. `error(500).forever()`).

Reply kinds: `text` (optionally with reasoning in `reasoning_content` or `reasoning`, the two fields providers
use), `tool_call` / `tool_calls`, `error` (any status, optional `Retry-After`), `hang` (never answers until the
stub stops, or for N seconds), `garbage` (a 200 whose body is not JSON). `.after(seconds)` delays any reply.
Streaming requests (`"stream": true`) get the same reply as server-sent events. `.cut_off()` marks a message
`finish_reason: length`. `OpenAIStub(strict=True)` refuses, with HTTP 500 and pydantic-style validation errors,
any message whose `content` is not a string (as llama-cpp-python's server does).

Run standalone (manual experiments, benchmarks: a separate process, like a real endpoint):
`python tests/openai_stub.py [--delay S] [--by-turn '[{"tool_call": "run_count"}, {"text": "Done."}]']`
prints the base URL, then serves until killed.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "OpenAIStub",
    "Reply",
    "StubRequest",
    "by_turn",
    "error",
    "garbage",
    "hang",
    "reply_from_json",
    "strict_errors",
    "text",
    "tool_call",
    "tool_calls",
]


@dataclass(frozen=True)
class Reply:
    """One scripted answer. Build it with the functions below rather than directly."""

    kind: str  # message | error | hang | garbage
    content: str | None = None
    tool_calls: tuple[tuple[str, str, str], ...] = ()  # (call_id, name, arguments JSON text)
    reasoning: str | None = None
    reasoning_field: str = "reasoning_content"
    status: int = 200
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    hang_seconds: float | None = None
    usage: dict[str, int] | None = None
    times: int | None = 1  # None = sticky (never consumed)
    finish_reason: str | None = None  # None = "tool_calls" or "stop" as the message says

    def cut_off(self) -> Reply:
        """The same message marked as cut off by the token limit (`finish_reason: length`)."""
        return replace(self, finish_reason="length")

    def forever(self) -> Reply:
        """The same reply for every request that reaches this queue (e.g. a 500 that never recovers)."""
        return replace(self, times=None)

    def after(self, seconds: float) -> Reply:
        """The same reply, sent after waiting `seconds` (a slow model)."""
        return replace(self, delay=seconds)


def text(content: str, *, reasoning: str | None = None, reasoning_field: str = "reasoning_content",
         usage: dict[str, int] | None = None) -> Reply:  # fmt: skip
    """An assistant message. `reasoning_field` is "reasoning_content" (DeepSeek, vLLM) or "reasoning" (OpenRouter)."""
    return Reply("message", content=content, reasoning=reasoning, reasoning_field=reasoning_field, usage=usage)


def tool_calls(calls: list[tuple[str, dict[str, Any] | str]], *, content: str | None = None,
               reasoning: str | None = None, reasoning_field: str = "reasoning_content") -> Reply:  # fmt: skip
    """An assistant message calling several tools; arguments given as a dict or as raw (possibly broken) text."""
    made = tuple(
        (f"call_{uuid.uuid4().hex[:12]}", name, args if isinstance(args, str) else json.dumps(args))
        for name, args in calls
    )
    return Reply("message", content=content, tool_calls=made, reasoning=reasoning, reasoning_field=reasoning_field)


def tool_call(name: str, arguments: dict[str, Any] | str | None = None, **kw: Any) -> Reply:
    """An assistant message calling one tool (see `tool_calls` for the keyword arguments)."""
    return tool_calls([(name, arguments if arguments is not None else {})], **kw)


def error(status: int, message: str = "", *, retry_after: float | None = None) -> Reply:
    """An HTTP error in OpenAI's error format (429 rate limit, 500, 503, 400 ...)."""
    msg = message or {429: "Rate limit reached", 500: "Internal server error"}.get(status, f"HTTP {status}")
    body = json.dumps({"error": {"message": msg, "type": "stub_error", "code": str(status)}}).encode()
    headers = (("retry-after", str(retry_after)),) if retry_after is not None else ()
    return Reply("error", status=status, body=body, headers=headers)


def hang(seconds: float | None = None) -> Reply:
    """Accept the request and never answer (until the stub stops), or answer a plain message after `seconds`."""
    return Reply("hang", hang_seconds=seconds)


def garbage(body: bytes = b"{this is not JSON", status: int = 200, content_type: str = "application/json") -> Reply:
    """A reply whose body is not a chat completion (a broken proxy); the content type is what it claims to be."""
    return Reply("garbage", status=status, body=body, headers=(("x-stub-content-type", content_type),))


def by_turn(replies: list[Reply], *, then: Reply | None = None) -> Callable[[dict[str, Any]], Reply]:
    """A responder picking `replies[n]` where n = assistant messages already in the conversation.

    It keeps no state, so any number of concurrent conversations each follow the same script; past the end it
    answers `then` (default "Done.").
    """

    def respond(body: dict[str, Any]) -> Reply:
        n = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
        return replies[n] if n < len(replies) else (then or text("Done."))

    return respond


@dataclass
class StubRequest:
    """A request the stub received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    reply: Reply | None = None
    received_at: float = field(default_factory=time.monotonic)


class OpenAIStub:
    """The server. `base_url` ends in `/v1`, as `AsyncOpenAI(base_url=...)` expects."""

    def __init__(self, *, default: Reply | None = None, strict: bool = False) -> None:
        self.default = default or text("Done.")
        self.strict = strict  # validate messages like llama-cpp-python's server (see `strict_errors`)
        self.responder: Callable[[dict[str, Any]], Reply] | None = None
        self.requests: list[StubRequest] = []
        self._queues: dict[str | None, deque[Reply]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> OpenAIStub:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="openai-stub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OpenAIStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start the stub first"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # ---- scripting -------------------------------------------------------------------------------------------
    def script(self, *replies: Reply, model: str | None = None) -> None:
        """Queue replies, answered in order (for requests naming `model`, or for any request)."""
        with self._lock:
            self._queues.setdefault(model, deque()).extend(replies)

    def reset(self) -> None:
        """Forget queued replies, the responder and recorded requests."""
        with self._lock:
            self._queues.clear()
            self.requests.clear()
            self.responder = None

    def chat_requests(self) -> list[StubRequest]:
        """The chat-completion requests received so far."""
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def _choose(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            for key in (body.get("model"), None):
                queue = self._queues.get(key)
                if queue:
                    reply = queue[0]
                    if reply.times is not None:
                        queue.popleft()
                    return reply
        return self.responder(body) if self.responder else self.default


# ---- HTTP --------------------------------------------------------------------------------------------------
def _completion(reply: Reply, model: str, body: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.reasoning:
        message[reply.reasoning_field] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = [{"id": cid, "type": "function", "function": {"name": n, "arguments": a}}
                                 for cid, n, a in reply.tool_calls]  # fmt: skip
    prompt = max(1, len(json.dumps(body.get("messages", []))) // 4)
    completion = max(1, len(json.dumps(message)) // 4)
    usage = reply.usage or {"prompt_tokens": prompt, "completion_tokens": completion,
                            "total_tokens": prompt + completion}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:16]}", "object": "chat.completion", "created": int(time.time()),
        "model": model, "usage": usage,
        "choices": [{"index": 0, "message": message,
                     "finish_reason": reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")}],
    }  # fmt: skip


def _chunks(completion: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """The completion as stream chunks: one delta with everything, a finish chunk, optionally usage."""
    choice = completion["choices"][0]
    delta = dict(choice["message"])
    if "tool_calls" in delta:
        delta["tool_calls"] = [{"index": i, **tc} for i, tc in enumerate(delta["tool_calls"])]
    base = {k: completion[k] for k in ("id", "created", "model")} | {"object": "chat.completion.chunk"}
    out = [base | {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
           base | {"choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]}]  # fmt: skip
    if include_usage:
        out.append(base | {"choices": [], "usage": completion["usage"]})
    return out


def _handler_for(stub: OpenAIStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle on, the body waits ~40 ms for the client's delayed
        # ACK on every reply, which would dominate any timing measured against the stub.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

        def _send(self, status: int, body: bytes, headers: tuple[tuple[str, str], ...] = (),
                  content_type: str = "application/json") -> None:  # fmt: skip
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            stub.requests.append(StubRequest("GET", self.path, dict(self.headers), None))
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, json.dumps({"object": "list", "data": [{"id": "stub", "object": "model"}]}).encode())
            else:
                self._send(404, b'{"error": {"message": "not found"}}')

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = {"_unparsed": raw.decode(errors="replace")}
            request = StubRequest("POST", self.path, dict(self.headers), body)
            stub.requests.append(request)
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, b'{"error": {"message": "only /v1/chat/completions is served"}}')
                return
            problems = strict_errors(body) if stub.strict else []
            if problems:  # the strict server's answer: HTTP 500 with pydantic's validation errors
                message = f"{len(problems)} validation errors:\n" + "\n".join(problems)
                self._send(500, json.dumps({"error": {"message": message, "type": "internal_server_error"}}).encode())
                return
            reply = request.reply = stub._choose(body)
            if reply.delay and stub._stopping.wait(reply.delay):
                return
            self._answer(reply, body)

        def _answer(self, reply: Reply, body: dict[str, Any]) -> None:
            if reply.kind == "hang":
                if stub._stopping.wait(reply.hang_seconds):
                    return
                reply = text("Done.")
            if reply.kind in ("error", "garbage"):
                ctype = dict(reply.headers).get("x-stub-content-type", "application/json")
                self._send(reply.status, reply.body or b"", reply.headers, ctype)
                return
            completion = _completion(reply, str(body.get("model", "stub")), body)
            if not body.get("stream"):
                self._send(200, json.dumps(completion).encode())
                return
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = "".join(f"data: {json.dumps(c)}\n\n" for c in _chunks(completion, usage)) + "data: [DONE]\n\n"
            self._send(200, events.encode(), content_type="text/event-stream")

    return Handler


def strict_errors(body: dict[str, Any]) -> list[str]:
    """What a server typing every message `content` as a plain string (llama-cpp-python 0.3.x) rejects: a
    content that is null or a list of parts, each reported as pydantic does."""
    problems = []
    for i, m in enumerate(body.get("messages") or []):
        if "content" in m and not isinstance(m["content"], str):
            kind = "null" if m["content"] is None else type(m["content"]).__name__
            problems.append(f"  {{'type': 'string_type', 'loc': ('body', 'messages', {i}, "
                            f"'typed-dict', 'content', 'str'), 'msg': 'Input should be a valid string', "
                            f"'input': {kind}}}")  # fmt: skip
    return problems


def reply_from_json(spec: dict[str, Any]) -> Reply:
    """A reply from its JSON form (for the standalone server): {"text": ...}, {"tool_call": name, "arguments":
    {...}}, {"error": status}, {"hang": seconds|null}; optional "reasoning" and "delay" keys."""
    if "tool_call" in spec:
        reply = tool_call(spec["tool_call"], spec.get("arguments") or {}, reasoning=spec.get("reasoning"))
    elif "error" in spec:
        reply = error(int(spec["error"]))
    elif "hang" in spec:
        reply = hang(spec["hang"])
    else:
        reply = text(str(spec.get("text", "Done.")), reasoning=spec.get("reasoning"))
    return reply.after(float(spec.get("delay", 0)))


def _main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Local OpenAI-compatible stub (prints its base URL, then serves).")
    parser.add_argument("--by-turn", help="JSON list of replies answered by conversation turn (see reply_from_json)")
    parser.add_argument("--delay", type=float, default=0.0, help="Seconds to wait before every reply.")
    args = parser.parse_args()
    with OpenAIStub(default=text("Done.").after(args.delay)) as stub:
        if args.by_turn:
            replies = [reply_from_json(r) for r in json.loads(args.by_turn)]
            stub.responder = by_turn([r.after(args.delay) for r in replies], then=stub.default)
        print(stub.base_url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":  # pragma: no cover - manual use and benchmarks
    _main()
