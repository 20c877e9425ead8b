"""fake_ai.py — fake AI CLIs for the tests: claude, codex, opencode, gemini.

Each accepts exactly the non-interactive command line of DESIGN.md §7b (and
rejects others as the real tool does), reads its prompt from stdin until
EOF, and answers. Behaviour on demand, per run:

  $FAKE_AI_DIR/<tool>.mode  or  $FAKE_<TOOL>_MODE  or  $FAKE_AI_MODE
      answer (default) | delay:N | stream | hang | ignore-term | grandchild |
      grandchild-hang | big | badutf8 | crash | auth | empty | fail | noread |
      setsid (a detached grandchild that outlives the tool) | nofinal (no final event) |
      noserver (no app-server / acp: an older release) |
      gate (a first delta, then waits for $FAKE_AI_DIR/<tool>.release) |
      switch (format switch, invalid JSON, unknown events mid-stream) |
      absurd (absurd usage, bad session id)
  Each prints in the shape of the real tool's format: claude stream-json, gemini
  stream-json, codex app-server JSON-RPC (or exec --json), opencode acp (or run
  --format json); text where asked for text.
  $FAKE_AI_DIR/<tool>.answer   the exact answer to print (else a default)
  $FAKE_AI_DIR/<tool>.calls.jsonl   one line per run: argv, stdin, cwd, pid
"""
import json
import os
import signal
import subprocess
import sys
import time


def die(message, code):
    sys.stderr.write(message + "\n")
    sys.exit(code)


def check_claude(args):
    if os.environ.get("CLAUDECODE"):
        die("Error: Claude Code cannot be launched inside another Claude Code session.", 1)
    fmt, i, printing, opts = "text", 0, False, {}
    while i < len(args):
        a = args[i]
        if a == "-p" or a == "--print":
            printing = True
        elif a == "--output-format" and i + 1 < len(args):
            fmt = args[i + 1]
            i += 1
            if fmt not in ("text", "json", "stream-json"):
                die("error: option '--output-format <format>' argument '%s' is invalid." % fmt, 1)
        elif a in ("--verbose", "--include-partial-messages", "--no-session-persistence"):
            opts[a] = True
        elif a in ("--model", "--resume", "-r", "--max-budget-usd") and i + 1 < len(args):
            opts[a] = args[i + 1]
            i += 1
        elif a.startswith("-"):
            die("error: unknown option '%s'" % a, 1)
        else:
            die("fake claude: the prompt must come on stdin, not argv ('%s')" % a[:40], 1)
        i += 1
    if not printing:
        die("fake claude: interactive mode needs a terminal", 1)
    if fmt == "stream-json" and not opts.get("--verbose"):
        die("Error: When using --print, --output-format=stream-json requires --verbose", 1)
    if opts.get("--include-partial-messages") and fmt != "stream-json":
        die("Error: --include-partial-messages requires --output-format=stream-json", 1)
    return fmt, opts


def check_codex(args):
    if args == ["app-server"]:
        return "app-server", {}
    if not args or args[0] != "exec":
        die("fake codex: interactive mode needs a terminal (use 'codex exec')", 1)
    args = args[1:]
    skip, i, saw_dash, fmt, opts = False, 0, False, "text", {}
    while i < len(args):
        a = args[i]
        if a == "--skip-git-repo-check":
            skip = True
        elif a == "--json":
            fmt = "json"
        elif a == "--ephemeral":
            opts[a] = True
        elif a in ("-m", "--model", "-s", "--sandbox") and i + 1 < len(args):
            i += 1
        elif a == "-":
            saw_dash = True
        elif a.startswith("-"):
            die("error: unexpected argument '%s' found\n\nUsage: codex exec [OPTIONS] [PROMPT]" % a, 2)
        else:
            die("fake codex: the prompt must come on stdin ('-'), not argv", 2)
        i += 1
    if not skip:
        die("Not inside a trusted directory and --skip-git-repo-check was not specified.", 1)
    if not saw_dash:
        die("fake codex: expected '-' to read the prompt from stdin", 2)
    return fmt, opts


def check_opencode(args):
    if args == ["acp"]:
        return "acp", {}
    if not args or args[0] != "run":
        die("fake opencode: interactive mode needs a terminal (use 'opencode run')", 1)
    args, i, fmt = args[1:], 0, "default"
    while i < len(args):
        a = args[i]
        if a in ("-m", "--model", "--title", "-s", "--session") and i + 1 < len(args):
            i += 1
        elif a == "--format" and i + 1 < len(args):
            fmt = args[i + 1]
            i += 1
        elif a.startswith("-"):
            die("Error: unknown option %s" % a, 1)
        else:
            die("fake opencode: the prompt must come on stdin, not argv", 1)
        i += 1
    return fmt, {}


def check_gemini(args):
    i, trusted, prompt_flag, fmt, opts = 0, False, False, "text", {}
    while i < len(args):
        a = args[i]
        if a in ("-p", "--prompt") and i + 1 < len(args):
            if args[i + 1] != "":
                die("fake gemini: the prompt must come on stdin, not argv", 1)
            prompt_flag = True
            i += 1
        elif a == "--skip-trust":
            trusted = True
        elif a in ("-m", "--model", "-r", "--resume") and i + 1 < len(args):
            opts[a] = args[i + 1]
            i += 1
        elif a in ("-o", "--output-format") and i + 1 < len(args):
            fmt = args[i + 1]
            if fmt not in ("text", "json", "stream-json"):
                die("Invalid values:\n  Argument: output-format, Given: \"%s\"" % fmt, 1)
            i += 1
        else:
            die("Unknown argument: %s" % a, 1)
        i += 1
    if not trusted and os.environ.get("GEMINI_CLI_TRUST_WORKSPACE") != "true":
        die("Gemini CLI is not running in a trusted directory.", 55)
    if not prompt_flag and sys.stdin.isatty():
        die("fake gemini: interactive mode needs a terminal", 1)
    return fmt, opts


CHECKS = {"claude": check_claude, "codex": check_codex,
          "opencode": check_opencode, "gemini": check_gemini}


def auth_failure(tool):
    if tool == "claude":
        sys.stdout.write("Not logged in · Please run /login\n")
        sys.exit(1)
    if tool == "codex":
        die("Error: you are not logged in. Run `codex login` or set OPENAI_API_KEY.", 1)
    if tool == "opencode":
        die("\x1b[90m█▀▀█ opencode\x1b[0m\nError: Unauthorized: no API key configured", 1)
    die("Please set an Auth method in your settings.json or specify GEMINI_API_KEY.", 41)


def setting(tool, name, default=None):
    d = os.environ.get("FAKE_AI_DIR")
    if d:
        path = os.path.join(d, "%s.%s" % (tool, name))
        if os.path.exists(path):
            with open(path, "rb") as f:
                return f.read()
    if name == "mode":
        v = os.environ.get("FAKE_%s_MODE" % tool.upper()) or os.environ.get("FAKE_AI_MODE")
        if v:
            return v.encode()
    return default


class Out:
    """What the fake prints, in the shape of the real tool's format."""

    def __init__(self, tool, fmt, rpc=None):
        self.tool, self.fmt, self.rpc = tool, fmt, rpc
        self.out = sys.stdout.buffer
        self.session = "fake-%s-%d" % (tool, os.getpid())
        self.item = 0

    def line(self, obj):
        self.out.write(json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogateescape") + b"\n")
        self.out.flush()

    def raw(self, data):
        self.out.write(data)
        self.out.flush()

    def start(self):
        if self.fmt == "stream-json" and self.tool == "claude":
            self.line({"type": "system", "subtype": "init", "session_id": self.session,
                       "model": "fake-claude-model", "tools": []})
            self.line({"type": "stream_event", "session_id": self.session,
                       "event": {"type": "message_start", "message": {}}})
        elif self.fmt == "stream-json":
            self.line({"type": "init", "session_id": self.session, "model": "fake-gemini-model"})
        elif self.fmt == "json" and self.tool == "codex":
            self.line({"type": "thread.started", "thread_id": self.session})
            self.line({"type": "turn.started"})

    def delta(self, text):
        if self.fmt == "stream-json" and self.tool == "claude":
            self.line({"type": "stream_event", "session_id": self.session,
                       "event": {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": text}}})
        elif self.fmt == "stream-json":
            self.line({"type": "message", "role": "assistant", "content": text, "delta": True})
        elif self.fmt == "app-server":
            self.line({"method": "item/agentMessage/delta",
                       "params": {"threadId": self.rpc.session, "turnId": "turn-1",
                                  "itemId": "msg-1", "delta": text}})
        elif self.fmt == "acp":
            self.line({"jsonrpc": "2.0", "method": "session/update",
                       "params": {"sessionId": self.rpc.session,
                                  "update": {"sessionUpdate": "agent_message_chunk",
                                             "content": {"type": "text", "text": text}}}})
        elif self.fmt in ("text", "default"):
            self.raw(text.encode("utf-8", "surrogateescape"))

    def final(self, answer, prompt_len):
        usage_in, usage_out = prompt_len // 4, len(answer) // 4
        if prompt_len < 0:       # absurd: past int64, and past any real count
            usage_in, usage_out = prompt_len, 10 ** 15
        if self.fmt == "stream-json" and self.tool == "claude":
            self.line({"type": "assistant", "session_id": self.session,
                       "message": {"content": [{"type": "text", "text": answer}]}})
            self.line({"type": "result", "subtype": "success", "is_error": False,
                       "result": answer, "session_id": self.session, "duration_ms": 5,
                       "total_cost_usd": 0.001,
                       "usage": {"input_tokens": usage_in, "output_tokens": usage_out,
                                 "cache_read_input_tokens": 0,
                                 "cache_creation_input_tokens": 0}})
        elif self.fmt == "stream-json":
            self.line({"type": "result", "status": "success",
                       "stats": {"input_tokens": usage_in, "output_tokens": usage_out,
                                 "cached": 0, "duration_ms": 5}})
        elif self.fmt == "json" and self.tool == "claude":
            self.line({"type": "result", "result": answer, "is_error": False,
                       "usage": {"input_tokens": usage_in, "output_tokens": usage_out}})
        elif self.fmt == "json" and self.tool == "codex":
            self.line({"type": "item.completed",
                       "item": {"id": "item_0", "type": "agent_message", "text": answer}})
            self.line({"type": "turn.completed",
                       "usage": {"input_tokens": usage_in, "cached_input_tokens": 0,
                                 "output_tokens": usage_out}})
        elif self.fmt == "json" and self.tool == "opencode":
            self.line({"type": "text", "sessionID": self.session,
                       "part": {"type": "text", "text": answer}})
            self.line({"type": "step_finish", "sessionID": self.session,
                       "part": {"reason": "stop", "cost": 0,
                                "tokens": {"input": usage_in, "output": usage_out,
                                           "cache": {"read": 0, "write": 0}}}})
        elif self.fmt == "app-server":
            self.line({"method": "item/completed",
                       "params": {"threadId": self.rpc.session, "turnId": "turn-1",
                                  "completedAtMs": 0,
                                  "item": {"type": "agentMessage", "id": "msg-1", "text": answer}}})
            self.line({"method": "thread/tokenUsage/updated",
                       "params": {"threadId": self.rpc.session, "turnId": "turn-1",
                                  "tokenUsage": {"last": {"inputTokens": usage_in,
                                                          "cachedInputTokens": 0,
                                                          "outputTokens": usage_out,
                                                          "reasoningOutputTokens": 0,
                                                          "totalTokens": usage_in + usage_out},
                                                 "total": {}}}})
            self.line({"method": "turn/completed",
                       "params": {"threadId": self.rpc.session,
                                  "turn": {"id": "turn-1", "items": [], "status": "completed"}}})
        elif self.fmt == "acp":
            self.line({"jsonrpc": "2.0", "id": self.rpc.prompt_id,
                       "result": {"stopReason": "end_turn",
                                  "usage": {"inputTokens": usage_in, "outputTokens": usage_out,
                                            "totalTokens": usage_in + usage_out}}})
        else:
            data = answer.encode("utf-8", "surrogateescape")
            self.raw(data + (b"" if data.endswith(b"\n") else b"\n"))

    def auth(self):
        if self.fmt == "stream-json" and self.tool == "claude":
            self.line({"type": "result", "subtype": "success", "is_error": True,
                       "result": "Not logged in · Please run /login", "session_id": self.session})
            sys.exit(1)
        if self.fmt == "app-server":
            self.line({"method": "error", "params": {"threadId": self.rpc.session,
                                                     "turnId": "turn-1", "willRetry": False,
                                                     "error": {"message": "you are not logged in",
                                                               "codexErrorInfo": "unauthorized"}}})
            self.line({"method": "turn/completed",
                       "params": {"threadId": self.rpc.session,
                                  "turn": {"id": "turn-1", "items": [], "status": "failed"}}})
            return
        if self.fmt == "acp":
            self.line({"jsonrpc": "2.0", "id": self.rpc.prompt_id,
                       "error": {"code": -32000, "message": "Unauthorized: no API key configured"}})
            return
        auth_failure(self.tool)


class Rpc:
    """The server side of codex app-server / opencode acp, enough for a turn."""

    def __init__(self, tool, fmt):
        self.tool, self.fmt = tool, fmt
        self.session = None
        self.prompt_id = None
        self.methods = []
        self.resumed = None

    def send(self, obj):
        obj["jsonrpc"] = "2.0"
        sys.stdout.buffer.write(json.dumps(obj).encode() + b"\n")
        sys.stdout.buffer.flush()

    def until_prompt(self):
        """Answer requests until the turn's prompt arrives; returns it."""
        for raw in sys.stdin.buffer:
            msg = json.loads(raw)
            method = msg.get("method")
            if method is None:
                continue
            self.methods.append(method)
            mid, params = msg.get("id"), msg.get("params") or {}
            if method == "initialize":
                if self.fmt == "acp":
                    self.send({"id": mid, "result": {"protocolVersion": 1,
                                                     "agentCapabilities": {"loadSession": True}}})
                else:
                    self.send({"id": mid, "result": {"userAgent": "fake-codex/9.9.9",
                                                     "codexHome": "/tmp", "platformFamily": "unix",
                                                     "platformOs": "linux"}})
            elif method in ("thread/start", "session/new"):
                self.session = "fake-%s-%d" % (self.tool, os.getpid())
                if (setting(self.tool, "mode", b"") or b"").strip() == b"absurd":
                    self.session = "x; rm -rf ~ $(id)"
                self.params = params
                if method == "thread/start":
                    self.send({"id": mid, "result": {"thread": {"id": self.session},
                                                     "model": params.get("model") or "fake-gpt"}})
                else:
                    self.send({"id": mid, "result": {"sessionId": self.session}})
            elif method in ("thread/resume", "session/load"):
                wanted = params.get("threadId") or params.get("sessionId")
                self.params = params
                if wanted and wanted.startswith("fake-"):
                    self.session = self.resumed = wanted
                    if method == "thread/resume":
                        self.send({"id": mid, "result": {"thread": {"id": wanted}}})
                    else:
                        self.send({"id": mid, "result": {}})
                else:
                    self.resumed = wanted
                    record(self.tool, b"", self.fmt, {}, None, self)
                    self.send({"id": mid, "error": {"code": -32600,
                                                    "message": "no session %s" % wanted}})
            elif method == "session/set_model":
                self.send({"id": mid, "result": {}})
            elif method in ("turn/start", "session/prompt"):
                self.prompt_id = mid
                items = params.get("input") or params.get("prompt") or []
                if method == "turn/start":
                    self.send({"id": mid, "result": {"turn": {"id": "turn-1", "items": [],
                                                              "status": "inProgress"}}})
                return "".join(i.get("text", "") for i in items).encode("utf-8")
        sys.exit(0)

    def drain(self):
        """A server stays until its client closes stdin."""
        for _ in sys.stdin.buffer:
            pass


def record(tool, prompt, fmt, opts, escaped, rpc):
    """One line per run in $FAKE_AI_DIR/<tool>.calls.jsonl."""
    d = os.environ.get("FAKE_AI_DIR")
    if not d:
        return
    with open(os.path.join(d, "%s.calls.jsonl" % tool), "a") as f:
        f.write(json.dumps({"argv": sys.argv, "stdin": prompt.decode("utf-8", "replace"),
                            "cwd": os.getcwd(), "pid": os.getpid(),
                            "pgid": os.getpgid(0), "claudecode": os.environ.get("CLAUDECODE"),
                            "format": fmt, "opts": opts, "escaped": escaped,
                            "methods": rpc.methods if rpc else None,
                            "params": getattr(rpc, "params", None) if rpc else None,
                            "resumed": rpc.resumed if rpc else (opts.get("--resume")
                                                                or opts.get("-r"))})
                + "\n")


def main(tool):
    args = sys.argv[1:]
    if args == ["--version"]:
        print("%s 9.9.9 (fake)" % tool)
        return
    fmt, opts = CHECKS[tool](args)
    mode = (setting(tool, "mode", b"answer") or b"answer").decode().strip()
    if fmt in ("app-server", "acp") and mode == "noserver":
        die("error: unrecognized subcommand '%s'" % fmt, 2)     # an older release
    rpc = Rpc(tool, fmt) if fmt in ("app-server", "acp") else None
    if mode == "noread":
        prompt = b""
    elif rpc:
        prompt = rpc.until_prompt()
    else:
        prompt = sys.stdin.buffer.read()
    escaped = None
    if mode == "setsid":
        child = subprocess.Popen(["sleep", "1000"], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
        escaped = child.pid
    record(tool, prompt, fmt, opts, escaped, rpc)
    answer = (setting(tool, "answer") or (
        "%s answers: I read %d bytes of prompt." % (tool, len(prompt))).encode()).decode(
            "utf-8", "surrogateescape")
    out = Out(tool, fmt, rpc)
    resume = opts.get("--resume") or opts.get("-r")
    if resume:
        # as the real tools: a session they never made cannot be resumed
        if not resume.startswith("fake-"):
            if tool == "claude":
                sys.stderr.write("No conversation found with session ID: %s\n" % resume)
                out.line({"type": "result", "subtype": "error_during_execution",
                          "is_error": True, "session_id": out.session})
                sys.exit(1)
            die("Error resuming session: Invalid session identifier \"%s\"" % resume, 42)
        out.session = resume
    if mode.startswith("delay:"):
        time.sleep(float(mode.split(":", 1)[1]))
    elif mode == "hang":
        while True:
            time.sleep(60)
    elif mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(60)
    elif mode in ("grandchild", "grandchild-hang"):
        subprocess.Popen(["sleep", "1000"], stdout=sys.stdout, stderr=sys.stderr)
        if mode == "grandchild-hang":
            while True:
                time.sleep(60)
    elif mode == "big":
        if fmt in ("text", "default"):
            chunk = b"x" * 1048575 + b"\n"
            for _ in range(50):
                out.raw(chunk)
            return
        answer = "x" * (50 * 1024 * 1024)        # one 50 MB line: the final event
    elif mode == "gate":
        # the first half as a delta, then wait for $FAKE_AI_DIR/<tool>.release
        # (bounded), then the rest: a test sees the text while the tool runs
        out.start()
        first = "first half from %s\n" % tool
        out.delta(first)
        release = os.path.join(os.environ.get("FAKE_AI_DIR", "/nonexistent"), tool + ".release")
        deadline = time.monotonic() + 300
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.02)
        rest = "second half from %s" % tool
        out.delta(rest)
        out.final(first + rest, len(prompt))
        if rpc:
            rpc.drain()
        return
    elif mode == "stream":
        out.start()
        parts = []
        for i in range(8):
            part = "part %d of a streamed answer\n" % i
            parts.append(part)
            out.delta(part)
            time.sleep(0.3)
        out.final("".join(parts), len(prompt))
        if rpc:
            rpc.drain()
        return
    elif mode == "badutf8":
        answer = b"bad bytes: \xff\xfe and a cut \xe4\xbd end".decode("utf-8", "surrogateescape")
    elif mode == "crash":
        sys.stderr.write("about to crash\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGSEGV)
    elif mode == "auth":
        out.start()
        out.auth()
        if rpc:
            rpc.drain()
        return
    elif mode == "empty":
        if rpc or fmt in ("stream-json", "json"):
            out.start()
            out.final("", len(prompt))
            if rpc:
                rpc.drain()
        return
    elif mode == "nofinal":
        out.start()
        out.delta("half an answer")
        return
    elif mode == "fail":
        die("boom: the fake %s broke" % tool, 2)
    elif mode == "switch":
        # a change of format mid-stream, invalid JSON and unknown events: skipped
        out.start()
        out.delta("kept ")
        out.raw(b"plain text now, not JSON\n{\"type\": broken json\n")
        out.line({"type": "brand_new_event", "method": "some/new/notification", "x": [1, 2]})
        out.delta("answer")
        out.final("kept answer", len(prompt))
        if rpc:
            rpc.drain()
        return
    elif mode == "absurd":
        # usage numbers no model reports, and a session id with shell characters
        out.session = "x; rm -rf ~ $(id)"
        if rpc:
            rpc.session = out.session
        out.start()
        out.delta(answer)
        out.final(answer, -10 ** 30)
        if rpc:
            rpc.drain()
        return
    out.start()
    out.delta(answer)
    out.final(answer, len(prompt))
    if rpc:
        rpc.drain()
