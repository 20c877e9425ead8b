"""fakemodel.py — a fake model server for the real AI CLIs (stdlib only).

FakeModel(script=[...]) listens on 127.0.0.1 on a free port and answers the
model APIs the four real CLIs speak, each as streaming SSE with usage:

  Anthropic Messages     POST /v1/messages            (claude)
                         POST /v1/messages/count_tokens
  OpenAI Responses       POST /v1/responses           (codex)
  OpenAI Chat            POST /v1/chat/completions    (opencode, openai-compatible)
  Gemini                 POST /v1beta/models/M:streamGenerateContent?alt=sse
                         POST /v1beta/models/M:generateContent, :countTokens (gemini)
  model lists            GET  /v1/models, /v1beta/models, /models

A script entry is a dict, consumed one per model turn in order:
  text            the answer text (default: FakeModel.default_text)
  usage           {input_tokens, output_tokens, cache_read_tokens, cache_write_tokens}
  chunks          how many deltas the text is cut into (default 1)
  chunk_delay_ms  pause before each delta after the first (default 0)
  first_delay_ms  pause before the first delta (default 0)
  tool_use        [{"name", "input"}]: the answer asks for these tool calls
  status          401 | 429 | 500 | ...: answer with that API error instead
  times           how many requests this entry answers (default 1; errors
                  are usually given times > 1, since every CLI retries)
  headers         extra response headers
  hang_up         True: close the stream after the first delta, no final event
Each record also has at (arrival), first_delta_at and done_at (time.time()).
When the script runs out it answers with default_text.

Usage on the wire follows each API's own meaning: Anthropic's input_tokens
excludes the cache; OpenAI's input_tokens and Gemini's promptTokenCount
include the cached tokens (input_tokens + cache_read_tokens), with the
cached part in input_tokens_details.cached_tokens / cachedContentTokenCount.
cache_write_tokens exists only on Anthropic.

Requests the CLIs make besides a turn (gemini's JSON-mode helper calls,
claude's title/quota calls, count_tokens) are answered without consuming
the script and recorded with "aux": True. Every request is recorded in
.requests as {path, method, query, headers, body (parsed JSON or text),
api, aux, entry, at}. A CONNECT (a CLI trying to reach the internet through
the HTTPS_PROXY that realcli.py points at us) is recorded and refused: see
.escapes().

Standalone, for benches:  python3 tests/fakemodel.py --port 0 [--script F]
prints its URL on stdout, then serves until killed; --log F appends every
request as a JSON line.
"""
import argparse
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

DEFAULT_TEXT = "Hello from the fake model."
DEFAULT_USAGE = {"input_tokens": 11, "output_tokens": 7,
                 "cache_read_tokens": 0, "cache_write_tokens": 0}
MAX_BODY = 64 * 1024 * 1024


def _usage(entry):
    u = dict(DEFAULT_USAGE)
    u.update(entry.get("usage") or {})
    return {k: int(u.get(k, 0)) for k in DEFAULT_USAGE}


def _split(text, n):
    """Cut text into n pieces (never splitting a character)."""
    n = max(1, min(int(n or 1), max(1, len(text))))
    size = -(-len(text) // n) if text else 0
    if not text:
        return [""]
    return [text[i:i + size] for i in range(0, len(text), size)]


def _tool_calls(entry):
    out = []
    for i, t in enumerate(entry.get("tool_use") or []):
        out.append({"id": t.get("id") or "toolu_fake%02d%s" % (i, uuid.uuid4().hex[:12]),
                    "name": t["name"], "input": t.get("input") or {}})
    return out


class _Stream:
    """Writes one SSE response, honouring the entry's pacing."""

    def __init__(self, handler, entry):
        self.h = handler
        self.entry = entry
        self.sent_first = False
        self.deltas = 0

    def start(self, content_type="text/event-stream"):
        self.h.send_response(200)
        self.h.send_header("Content-Type", content_type)
        self.h.send_header("Cache-Control", "no-cache")
        self.h.send_header("Connection", "close")
        for k, v in (self.entry.get("headers") or {}).items():
            self.h.send_header(k, v)
        self.h.end_headers()
        self.h.close_connection = True

    def event(self, name, data):
        payload = ""
        if name:
            payload += "event: %s\n" % name
        payload += "data: %s\n\n" % (data if isinstance(data, str)
                                     else json.dumps(data, separators=(",", ":")))
        self.h.wfile.write(payload.encode("utf-8"))
        self.h.wfile.flush()

    def pace(self):
        """Call before each text delta."""
        #  "hold_after": N — the stream stops after N deltas until the test
        #  calls FakeModel.release() (or hold_max_s passes): the answer is
        #  then still unfinished for as long as the test needs, whatever
        #  the machine's load
        if self.deltas == self.entry.get("hold_after", -1):
            self.h.server.fake.gate.wait(self.entry.get("hold_max_s", 120))
        self.deltas += 1
        if not self.sent_first:
            self.sent_first = True
            d = self.entry.get("first_delay_ms", 0)
            if d:
                time.sleep(d / 1000.0)
            # the first delta is written right after this
            self.h.rec["first_delta_at"] = time.time()
            return
        d = self.entry.get("chunk_delay_ms", 0)
        if d:
            time.sleep(d / 1000.0)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakemodel/1"

    def log_message(self, fmt, *args):  # quiet
        pass

    # -- plumbing -------------------------------------------------------
    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("body too large")
        if n:
            return self.rfile.read(n)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                data += self.rfile.read(size)
                self.rfile.readline()
                if len(data) > MAX_BODY:
                    raise ValueError("body too large")
            return data
        return b""

    def _json(self, status, doc, headers=None):
        body = json.dumps(doc).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _record(self, method, raw):
        parts = urlsplit(self.path)
        body = raw.decode("utf-8", "replace")
        try:
            body = json.loads(body) if body else None
        except ValueError:
            pass
        rec = {"path": parts.path, "method": method,
               "query": {k: v[-1] for k, v in parse_qs(parts.query).items()},
               "headers": {k.lower(): v for k, v in self.headers.items()},
               "body": body, "bytes": len(raw), "api": None, "aux": False,
               "entry": None, "at": time.time(), "done_at": None,
               "first_delta_at": None}
        self.server.fake._add_request(rec)
        return rec

    # -- verbs ----------------------------------------------------------
    def do_CONNECT(self):
        rec = self._record("CONNECT", b"")
        rec["api"], rec["path"], rec["aux"] = "escape", self.path, True
        self.send_response(403, "fakemodel: offline")
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.close_connection = True

    def do_GET(self):
        rec = self._record("GET", b"")
        self._route(rec)

    def do_HEAD(self):
        rec = self._record("HEAD", b"")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        try:
            raw = self._read_body()
        except ValueError:
            self._json(413, {"error": {"message": "too large"}})
            return
        rec = self._record("POST", raw)
        self._route(rec)

    def do_PUT(self):
        self.do_POST()

    def do_DELETE(self):
        rec = self._record("DELETE", b"")
        self._json(200, {})

    # -- routing --------------------------------------------------------
    def _route(self, rec):
        self.rec = rec
        try:
            self._route_api(rec)
        finally:
            rec["done_at"] = time.time()

    def _route_api(self, rec):
        p, m = rec["path"], rec["method"]
        fake = self.server.fake
        try:
            if p.endswith("/messages/count_tokens"):
                rec["api"], rec["aux"] = "anthropic", True
                self._json(200, {"input_tokens": fake._count(rec["body"])})
            elif p.endswith("/messages") and m == "POST":
                rec["api"] = "anthropic"
                self._anthropic(rec)
            elif p.endswith("/responses") and m == "POST":
                rec["api"] = "responses"
                self._responses(rec)
            elif p.endswith("/chat/completions") and m == "POST":
                rec["api"] = "chat"
                self._chat(rec)
            elif ":streamGenerateContent" in p or ":generateContent" in p:
                rec["api"] = "gemini"
                self._gemini(rec, stream=":streamGenerateContent" in p)
            elif p.endswith(":countTokens"):
                rec["api"], rec["aux"] = "gemini", True
                self._json(200, {"totalTokens": fake._count(rec["body"])})
            elif p.endswith(":embedContent") or p.endswith(":batchEmbedContents"):
                rec["api"], rec["aux"] = "gemini", True
                self._json(200, {"embedding": {"values": [0.0] * 8}})
            elif m == "GET" and (p.endswith("/models") or "/models/" in p):
                rec["aux"] = True
                self._models(rec)
            else:
                rec["aux"] = True
                rec["api"] = "unknown"
                self._json(404, {"error": {"message": "fakemodel: no route for %s %s" % (m, p),
                                           "type": "not_found_error", "code": 404,
                                           "status": "NOT_FOUND"}})
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _models(self, rec):
        names = self.server.fake.models
        p = rec["path"]
        if p.startswith("/v1beta"):
            doc = {"models": [{"name": "models/" + n, "displayName": n,
                               "supportedGenerationMethods": ["generateContent",
                                                              "streamGenerateContent",
                                                              "countTokens"],
                               "inputTokenLimit": 1048576, "outputTokenLimit": 65536}
                              for n in names]}
        else:
            doc = {"object": "list", "data": [{"id": n, "object": "model", "type": "model",
                                               "created": 1700000000, "owned_by": "fakemodel",
                                               "display_name": n,
                                               "created_at": "2025-01-01T00:00:00Z"}
                                              for n in names],
                   "has_more": False, "first_id": names[0], "last_id": names[-1],
                   "models": [{"slug": n, "display_name": n} for n in names]}
        self._json(200, doc)

    def _error(self, api, entry):
        status = int(entry["status"])
        headers = {"x-should-retry": "false"}
        if status == 429:
            headers["retry-after"] = "0"
        headers.update(entry.get("headers") or {})
        msg = entry.get("message")
        if api == "anthropic":
            kind = {400: "invalid_request_error", 401: "authentication_error",
                    403: "permission_error", 404: "not_found_error",
                    429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
            text = msg or {401: "invalid x-api-key", 429: "Number of request tokens has exceeded "
                           "your per-minute rate limit"}.get(status, "Internal server error")
            self._json(status, {"type": "error", "error": {"type": kind, "message": text}},
                       headers)
        elif api == "gemini":
            st = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                  429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}.get(status, "INTERNAL")
            text = msg or {401: "API key not valid. Please pass a valid API key.",
                           429: "Resource has been exhausted (e.g. check quota)."}.get(
                               status, "Internal error encountered.")
            self._json(status, {"error": {"code": status, "message": text, "status": st}},
                       headers)
        else:
            code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status, "server_error")
            kind = {401: "invalid_request_error", 429: "requests"}.get(status, "server_error")
            text = msg or {401: "Incorrect API key provided: sk-fake. You can find your API key "
                           "at https://platform.openai.com/account/api-keys.",
                           429: "Rate limit reached for requests"}.get(status,
                                                                      "The server had an error")
            self._json(status, {"error": {"message": text, "type": kind, "param": None,
                                          "code": code}}, headers)

    def _take(self, rec, aux=False):
        entry = self.server.fake._next(rec, aux)
        return entry

    # -- Anthropic Messages ----------------------------------------------
    def _anthropic(self, rec):
        body = rec["body"] if isinstance(rec["body"], dict) else {}
        aux = self.server.fake._is_aux_anthropic(body)
        entry = self._take(rec, aux)
        if "status" in entry:
            return self._error("anthropic", entry)
        model = body.get("model") or "claude-fake"
        u = _usage(entry)
        text = entry.get("text", self.server.fake.default_text)
        calls = _tool_calls(entry)
        stop = "tool_use" if calls else "end_turn"
        mid = "msg_fake" + uuid.uuid4().hex[:20]
        usage_start = {"input_tokens": u["input_tokens"],
                       "cache_creation_input_tokens": u["cache_write_tokens"],
                       "cache_read_input_tokens": u["cache_read_tokens"], "output_tokens": 1,
                       "service_tier": "standard"}
        usage_end = {"input_tokens": u["input_tokens"],
                     "cache_creation_input_tokens": u["cache_write_tokens"],
                     "cache_read_input_tokens": u["cache_read_tokens"],
                     "output_tokens": u["output_tokens"]}
        if not body.get("stream"):
            content = []
            if text:
                content.append({"type": "text", "text": text})
            for c in calls:
                content.append({"type": "tool_use", "id": c["id"], "name": c["name"],
                                "input": c["input"]})
            usage_end["service_tier"] = "standard"
            return self._json(200, {"id": mid, "type": "message", "role": "assistant",
                                    "model": model, "content": content, "stop_reason": stop,
                                    "stop_sequence": None, "usage": usage_end})
        s = _Stream(self, entry)
        s.start()
        s.event("message_start", {"type": "message_start", "message": {
            "id": mid, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": usage_start}})
        index = 0
        if text or not calls:
            s.event("content_block_start", {"type": "content_block_start", "index": index,
                                            "content_block": {"type": "text", "text": ""}})
            s.event("ping", {"type": "ping"})
            for piece in _split(text, entry.get("chunks", 1)):
                s.pace()
                s.event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                "delta": {"type": "text_delta", "text": piece}})
                if entry.get("hang_up"):
                    return
            s.event("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        for c in calls:
            s.event("content_block_start", {"type": "content_block_start", "index": index,
                                            "content_block": {"type": "tool_use", "id": c["id"],
                                                              "name": c["name"], "input": {}}})
            js = json.dumps(c["input"])
            for piece in _split(js, 2):
                s.event("content_block_delta", {"type": "content_block_delta", "index": index,
                                                "delta": {"type": "input_json_delta",
                                                          "partial_json": piece}})
            s.event("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        s.event("message_delta", {"type": "message_delta",
                                  "delta": {"stop_reason": stop, "stop_sequence": None},
                                  "usage": usage_end})
        s.event("message_stop", {"type": "message_stop"})

    # -- OpenAI Responses --------------------------------------------------
    def _responses(self, rec):
        body = rec["body"] if isinstance(rec["body"], dict) else {}
        entry = self._take(rec, False)
        if "status" in entry:
            return self._error("openai", entry)
        model = body.get("model") or "gpt-fake"
        u = _usage(entry)
        text = entry.get("text", self.server.fake.default_text)
        calls = _tool_calls(entry)
        rid = "resp_fake" + uuid.uuid4().hex[:20]
        mid = "msg_fake" + uuid.uuid4().hex[:20]
        created = int(time.time())
        usage = {"input_tokens": u["input_tokens"] + u["cache_read_tokens"],
                 "input_tokens_details": {"cached_tokens": u["cache_read_tokens"]},
                 "output_tokens": u["output_tokens"],
                 "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": u["input_tokens"] + u["cache_read_tokens"] + u["output_tokens"]}
        base = {"id": rid, "object": "response", "created_at": created, "model": model,
                "status": "in_progress", "output": [], "usage": None}
        msg_done = {"id": mid, "type": "message", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}]}
        call_items = [{"id": "fc_" + c["id"], "type": "function_call", "status": "completed",
                       "call_id": "call_" + c["id"], "name": c["name"],
                       "arguments": json.dumps(c["input"])} for c in calls]
        output = ([msg_done] if text or not calls else []) + call_items
        if not body.get("stream"):
            done = dict(base, status="completed", output=output, usage=usage)
            return self._json(200, done)
        s = _Stream(self, entry)
        s.start()
        seq = [0]

        def ev(name, data):
            data = dict(data, type=name, sequence_number=seq[0])
            seq[0] += 1
            s.event(name, data)
        ev("response.created", {"response": base})
        ev("response.in_progress", {"response": base})
        oi = 0
        if text or not calls:
            ev("response.output_item.added", {"output_index": oi, "item": {
                "id": mid, "type": "message", "status": "in_progress", "role": "assistant",
                "content": []}})
            ev("response.content_part.added", {"item_id": mid, "output_index": oi,
                                               "content_index": 0, "part": {
                                                   "type": "output_text", "text": "",
                                                   "annotations": []}})
            for piece in _split(text, entry.get("chunks", 1)):
                s.pace()
                ev("response.output_text.delta", {"item_id": mid, "output_index": oi,
                                                  "content_index": 0, "delta": piece})
                if entry.get("hang_up"):
                    return
            ev("response.output_text.done", {"item_id": mid, "output_index": oi,
                                             "content_index": 0, "text": text})
            ev("response.content_part.done", {"item_id": mid, "output_index": oi,
                                              "content_index": 0, "part": {
                                                  "type": "output_text", "text": text,
                                                  "annotations": []}})
            ev("response.output_item.done", {"output_index": oi, "item": msg_done})
            oi += 1
        for item in call_items:
            ev("response.output_item.added", {"output_index": oi,
                                              "item": dict(item, status="in_progress",
                                                           arguments="")})
            ev("response.function_call_arguments.delta", {"item_id": item["id"],
                                                          "output_index": oi,
                                                          "delta": item["arguments"]})
            ev("response.function_call_arguments.done", {"item_id": item["id"],
                                                         "output_index": oi,
                                                         "arguments": item["arguments"]})
            ev("response.output_item.done", {"output_index": oi, "item": item})
            oi += 1
        ev("response.completed", {"response": dict(base, status="completed", output=output,
                                                   usage=usage)})

    # -- OpenAI Chat Completions -------------------------------------------
    def _chat(self, rec):
        body = rec["body"] if isinstance(rec["body"], dict) else {}
        aux = self.server.fake._is_aux_chat(body)
        entry = self._take(rec, aux)
        if "status" in entry:
            return self._error("openai", entry)
        model = body.get("model") or "gpt-fake"
        u = _usage(entry)
        text = entry.get("text", self.server.fake.default_text)
        calls = _tool_calls(entry)
        cid = "chatcmpl-fake" + uuid.uuid4().hex[:20]
        created = int(time.time())
        usage = {"prompt_tokens": u["input_tokens"] + u["cache_read_tokens"],
                 "completion_tokens": u["output_tokens"],
                 "total_tokens": u["input_tokens"] + u["cache_read_tokens"] + u["output_tokens"],
                 "prompt_tokens_details": {"cached_tokens": u["cache_read_tokens"]},
                 "completion_tokens_details": {"reasoning_tokens": 0}}
        finish = "tool_calls" if calls else "stop"
        tcs = [{"id": "call_" + c["id"], "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["input"])}}
               for c in calls]
        if not body.get("stream"):
            msg = {"role": "assistant", "content": text}
            if tcs:
                msg["tool_calls"] = tcs
            return self._json(200, {"id": cid, "object": "chat.completion", "created": created,
                                    "model": model, "choices": [{"index": 0, "message": msg,
                                                                 "finish_reason": finish}],
                                    "usage": usage})
        s = _Stream(self, entry)
        s.start()

        def chunk(delta, finish_reason=None, **extra):
            doc = {"id": cid, "object": "chat.completion.chunk", "created": created,
                   "model": model, "choices": [{"index": 0, "delta": delta,
                                                "finish_reason": finish_reason}]}
            doc.update(extra)
            s.event(None, doc)
        chunk({"role": "assistant", "content": ""})
        if text:
            for piece in _split(text, entry.get("chunks", 1)):
                s.pace()
                chunk({"content": piece})
                if entry.get("hang_up"):
                    return
        for i, tc in enumerate(tcs):
            chunk({"tool_calls": [{"index": i, "id": tc["id"], "type": "function",
                                   "function": {"name": tc["function"]["name"],
                                                "arguments": ""}}]})
            chunk({"tool_calls": [{"index": i, "function": {
                "arguments": tc["function"]["arguments"]}}]})
        chunk({}, finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            s.event(None, {"id": cid, "object": "chat.completion.chunk", "created": created,
                           "model": model, "choices": [], "usage": usage})
        s.event(None, "[DONE]")

    # -- Gemini --------------------------------------------------------------
    def _gemini(self, rec, stream):
        body = rec["body"] if isinstance(rec["body"], dict) else {}
        aux = self.server.fake._is_aux_gemini(body, stream)
        entry = self._take(rec, aux)
        if "status" in entry:
            return self._error("gemini", entry)
        model = rec["path"].rsplit("/", 1)[-1].split(":", 1)[0] or "gemini-fake"
        u = _usage(entry)
        text = entry.get("text", self.server.fake.default_text)
        calls = _tool_calls(entry)
        usage = {"promptTokenCount": u["input_tokens"] + u["cache_read_tokens"],
                 "candidatesTokenCount": u["output_tokens"],
                 "totalTokenCount": u["input_tokens"] + u["cache_read_tokens"]
                 + u["output_tokens"],
                 "promptTokensDetails": [{"modality": "TEXT",
                                          "tokenCount": u["input_tokens"]
                                          + u["cache_read_tokens"]}]}
        if u["cache_read_tokens"]:
            usage["cachedContentTokenCount"] = u["cache_read_tokens"]
        rid = "fake" + uuid.uuid4().hex[:16]
        fparts = [{"functionCall": {"name": c["name"], "args": c["input"]}} for c in calls]

        def doc(parts, finish=None, with_usage=False):
            cand = {"content": {"parts": parts, "role": "model"}, "index": 0}
            if finish:
                cand["finishReason"] = finish
            d = {"candidates": [cand], "modelVersion": model, "responseId": rid}
            if with_usage:
                d["usageMetadata"] = usage
            return d
        if not stream:
            parts = ([{"text": text}] if text else []) + fparts
            return self._json(200, doc(parts, "STOP", True))
        s = _Stream(self, entry)
        s.start()
        pieces = _split(text, entry.get("chunks", 1)) if text else []
        for i, piece in enumerate(pieces):
            s.pace()
            last = i == len(pieces) - 1 and not fparts
            s.event(None, doc([{"text": piece}], "STOP" if last else None, last))
            if entry.get("hang_up"):
                return
        if fparts or not pieces:
            s.event(None, doc(fparts or [{"text": ""}], "STOP", True))


class FakeModel:
    """A fake model server on 127.0.0.1:<free port>; see the module doc."""

    def __init__(self, script=None, default_text=DEFAULT_TEXT, port=0, log=None,
                 models=None):
        self.script = list(script or [])
        self.default_text = default_text
        self.models = list(models or ["claude-sonnet-4-5", "claude-haiku-4-5",
                                      "gpt-5", "gpt-5-codex", "gemini-2.5-pro",
                                      "gemini-2.5-flash", "fake-model"])
        self.requests = []
        self.turns = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        #  open, but for entries with "hold_after" between hold() and release()
        self.gate = threading.Event()
        self.gate.set()
        self._log = log
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self
        self.port = self._server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    # -- script ----------------------------------------------------------
    def hold(self):
        """Streams of entries with "hold_after" stop there until release()."""
        self.gate.clear()

    def release(self):
        self.gate.set()

    def add(self, *entries):
        """Append entries to the script."""
        with self._lock:
            self.script.extend(entries)

    def _next(self, rec, aux):
        with self._cond:
            if aux:
                rec["aux"] = True
                # no tokens: a CLI's totals then equal the turn's usage
                entry = {"text": self._aux_text(rec), "usage": {"input_tokens": 0,
                                                                "output_tokens": 0}}
            elif self.script:
                entry = self.script[0]
                left = int(entry.get("times", 1)) - 1
                if left > 0:
                    self.script[0] = dict(entry, times=left)
                else:
                    self.script.pop(0)
                self.turns += 1
            else:
                entry = {}
                self.turns += 1
            rec["entry"] = entry
            self._cond.notify_all()
            return entry

    def _aux_text(self, rec):
        body = rec["body"] if isinstance(rec["body"], dict) else {}
        cfg = body.get("generationConfig") or body.get("config") or {}
        if cfg.get("responseMimeType") == "application/json" or cfg.get("responseJsonSchema") \
                or cfg.get("responseSchema"):
            # answers every helper schema gemini uses: next-speaker check,
            # model router (classifier and numerical), loop detection
            return json.dumps({"reasoning": "fakemodel", "next_speaker": "user",
                               "model_choice": "flash", "complexity_reasoning": "fakemodel",
                               "complexity_score": 1, "unproductive_state_analysis": "none",
                               "unproductive_state_confidence": 0})
        return "Fake title"

    def _add_request(self, rec):
        with self._cond:
            self.requests.append(rec)
            self._cond.notify_all()
        if self._log:
            with open(self._log, "a") as f:
                f.write(json.dumps(rec) + "\n")

    @staticmethod
    def _count(body):
        return max(1, len(json.dumps(body or {})) // 4)

    # Side requests the CLIs make that are not the turn itself
    @staticmethod
    def _is_aux_anthropic(body):
        # claude's one-token quota probe and its small Haiku helpers (titles,
        # topic detection) have no tools and a tiny max_tokens
        if body.get("max_tokens", 1 << 30) <= 1:
            return True
        system = json.dumps(body.get("system") or "")
        return not body.get("tools") and ("title" in system.lower()
                                           and "conversation" in system.lower())

    @staticmethod
    def _is_aux_chat(body):
        # opencode's title generator: a system prompt asking for a title
        msgs = body.get("messages") or []
        first = msgs[0] if msgs else {}
        content = first.get("content") if isinstance(first, dict) else ""
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        return (not body.get("tools") and isinstance(content, str)
                and "title generator" in content.lower())

    @staticmethod
    def _is_aux_gemini(body, stream):
        # gemini's helper calls (next-speaker check, model router, loop
        # detection) are non-streaming JSON-mode generateContent
        cfg = body.get("generationConfig") or {}
        return (not stream) and (cfg.get("responseMimeType") == "application/json"
                                 or bool(cfg.get("responseJsonSchema")))

    # -- queries ---------------------------------------------------------
    def model_requests(self, api=None):
        """The turn requests (those that took a script entry), oldest first."""
        with self._lock:
            return [r for r in self.requests
                    if r["entry"] is not None and not r["aux"]
                    and (api is None or r["api"] == api)]

    @staticmethod
    def conversation(rec):
        """The turns of one model request as [(role, text)], role one of
        system, user, assistant, tool; whatever the API."""
        body = rec["body"] if isinstance(rec["body"], dict) else {}
        out = []

        def text_of(content):
            if isinstance(content, str):
                return content
            parts = []
            for c in content or []:
                if isinstance(c, dict):
                    if isinstance(c.get("text"), str):
                        parts.append(c["text"])
                    elif c.get("type") == "tool_result":
                        parts.append(text_of(c.get("content")))
            return "\n".join(parts)
        if rec["api"] == "anthropic":
            system = body.get("system")
            if system:
                out.append(("system", text_of(system)))
            for m in body.get("messages") or []:
                out.append((m.get("role"), text_of(m.get("content"))))
        elif rec["api"] == "responses":
            if body.get("instructions"):
                out.append(("system", body["instructions"]))
            for item in body.get("input") or []:
                if item.get("type", "message") == "message":
                    role = item.get("role")
                    out.append(("system" if role in ("developer", "system") else role,
                                text_of(item.get("content"))))
                elif item.get("type") == "function_call_output":
                    out.append(("tool", str(item.get("output"))))
        elif rec["api"] == "chat":
            for m in body.get("messages") or []:
                out.append((m.get("role"), text_of(m.get("content"))))
        elif rec["api"] == "gemini":
            si = body.get("systemInstruction") or body.get("system_instruction")
            if si:
                out.append(("system", text_of(si.get("parts"))))
            for c in body.get("contents") or []:
                role = {"model": "assistant"}.get(c.get("role"), c.get("role"))
                parts = c.get("parts") or []
                if any("functionResponse" in p for p in parts):
                    out.append(("tool", json.dumps([p.get("functionResponse") for p in parts])))
                else:
                    out.append((role, text_of(parts)))
        return out

    def tool_results(self):
        """Every Anthropic tool_result block the CLIs sent back, oldest first."""
        out = []
        for r in self.model_requests("anthropic"):
            for m in (r["body"] or {}).get("messages") or []:
                for c in m.get("content") if isinstance(m.get("content"), list) else []:
                    if isinstance(c, dict) and c.get("type") == "tool_result" \
                            and c not in out:
                        out.append(c)
        return out

    def escapes(self):
        """CONNECT requests: a CLI tried to reach the internet."""
        with self._lock:
            return [r for r in self.requests if r["method"] == "CONNECT"]

    def wait_turns(self, n, timeout=30.0):
        """Block until n turn requests have arrived; returns them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for r in self.requests if r["entry"] is not None and not r["aux"]]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("fakemodel: %d of %d model turns after %.0f s"
                                         % (len(got), n, timeout))
                self._cond.wait(left)

    def prompt_bytes(self):
        """Bytes of every turn request body received (the bench's measure)."""
        return sum(r["bytes"] for r in self.model_requests())

    def close(self):
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description="fake model server for the real AI CLIs")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--script", help="a JSON file: a list of script entries")
    ap.add_argument("--text", default=DEFAULT_TEXT, help="the default answer")
    ap.add_argument("--log", help="append every request to this file as a JSON line")
    args = ap.parse_args(argv)
    script = []
    if args.script:
        with open(args.script) as f:
            script = json.load(f)
    fake = FakeModel(script=script, default_text=args.text, port=args.port, log=args.log)
    print(fake.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    fake.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
