"""fake_ai.py — fake AI CLIs for the tests: claude, codex, opencode, gemini.

Each accepts exactly the non-interactive command line of DESIGN.md §7b (and
rejects others as the real tool does), reads its prompt from stdin until
EOF, and answers. Behaviour on demand, per run:

  $FAKE_AI_DIR/<tool>.mode  or  $FAKE_<TOOL>_MODE  or  $FAKE_AI_MODE
      answer (default) | delay:N | stream | hang | ignore-term | grandchild |
      grandchild-hang | big | badutf8 | crash | auth | empty | fail | noread
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
    fmt, i, printing = "text", 0, False
    while i < len(args):
        a = args[i]
        if a == "-p" or a == "--print":
            printing = True
        elif a == "--output-format" and i + 1 < len(args):
            fmt = args[i + 1]
            i += 1
            if fmt not in ("text", "json", "stream-json"):
                die("error: option '--output-format <format>' argument '%s' is invalid." % fmt, 1)
        elif a in ("--model", "--verbose") and a == "--verbose":
            pass
        elif a == "--model" and i + 1 < len(args):
            i += 1
        elif a.startswith("-"):
            die("error: unknown option '%s'" % a, 1)
        else:
            die("fake claude: the prompt must come on stdin, not argv ('%s')" % a[:40], 1)
        i += 1
    if not printing:
        die("fake claude: interactive mode needs a terminal", 1)
    return fmt


def check_codex(args):
    if not args or args[0] != "exec":
        die("fake codex: interactive mode needs a terminal (use 'codex exec')", 1)
    args = args[1:]
    skip, i, saw_dash, fmt = False, 0, False, "text"
    while i < len(args):
        a = args[i]
        if a == "--skip-git-repo-check":
            skip = True
        elif a == "--json":
            fmt = "json"
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
    return fmt


def check_opencode(args):
    if not args or args[0] != "run":
        die("fake opencode: interactive mode needs a terminal (use 'opencode run')", 1)
    args, i, fmt = args[1:], 0, "default"
    while i < len(args):
        a = args[i]
        if a in ("-m", "--model", "--title") and i + 1 < len(args):
            i += 1
        elif a == "--format" and i + 1 < len(args):
            fmt = args[i + 1]
            i += 1
        elif a.startswith("-"):
            die("Error: unknown option %s" % a, 1)
        else:
            die("fake opencode: the prompt must come on stdin, not argv", 1)
        i += 1
    return fmt


def check_gemini(args):
    i, trusted, prompt_flag, fmt = 0, False, False, "text"
    while i < len(args):
        a = args[i]
        if a in ("-p", "--prompt") and i + 1 < len(args):
            if args[i + 1] != "":
                die("fake gemini: the prompt must come on stdin, not argv", 1)
            prompt_flag = True
            i += 1
        elif a == "--skip-trust":
            trusted = True
        elif a in ("-m", "--model") and i + 1 < len(args):
            i += 1
        elif a in ("-o", "--output-format") and i + 1 < len(args):
            fmt = args[i + 1]
            i += 1
        else:
            die("Unknown argument: %s" % a, 1)
        i += 1
    if not trusted and os.environ.get("GEMINI_CLI_TRUST_WORKSPACE") != "true":
        die("Gemini CLI is not running in a trusted directory.", 55)
    if not prompt_flag and sys.stdin.isatty():
        die("fake gemini: interactive mode needs a terminal", 1)
    return fmt


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


def main(tool):
    args = sys.argv[1:]
    if args == ["--version"]:
        print("%s 9.9.9 (fake)" % tool)
        return
    fmt = CHECKS[tool](args)
    mode = (setting(tool, "mode", b"answer") or b"answer").decode().strip()
    prompt = b"" if mode == "noread" else sys.stdin.buffer.read()
    d = os.environ.get("FAKE_AI_DIR")
    if d:
        with open(os.path.join(d, "%s.calls.jsonl" % tool), "a") as f:
            f.write(json.dumps({"argv": sys.argv, "stdin": prompt.decode("utf-8", "replace"),
                                "cwd": os.getcwd(), "pid": os.getpid(),
                                "pgid": os.getpgid(0), "claudecode": os.environ.get("CLAUDECODE")})
                    + "\n")
    answer = setting(tool, "answer") or (
        "%s answers: I read %d bytes of prompt." % (tool, len(prompt))).encode()
    out = sys.stdout.buffer
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
        chunk = b"x" * 1048575 + b"\n"
        for _ in range(50):
            out.write(chunk)
        out.flush()
        return
    elif mode == "stream":
        for i in range(8):
            out.write(("part %d of a streamed answer\n" % i).encode())
            out.flush()
            time.sleep(0.3)
        return
    elif mode == "badutf8":
        answer = b"bad bytes: \xff\xfe and a cut \xe4\xbd end"
    elif mode == "crash":
        sys.stderr.write("about to crash\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGSEGV)
    elif mode == "auth":
        auth_failure(tool)
    elif mode == "empty":
        return
    elif mode == "fail":
        die("boom: the fake %s broke" % tool, 2)
    if tool == "claude" and fmt == "json":
        out.write(json.dumps({"type": "result", "result": answer.decode(), "is_error": False,
                              "usage": {"input_tokens": len(prompt) // 4,
                                        "output_tokens": len(answer) // 4}}).encode() + b"\n")
    else:
        out.write(answer)
        if not answer.endswith(b"\n"):
            out.write(b"\n")
    out.flush()
