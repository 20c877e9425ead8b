"""usage_tool.py NAME [--json] — a tools.json tool for the usage, budget and
streaming tests.

Reads its prompt from stdin until EOF, then answers. Per run, from
$FAKE_AI_DIR:
  NAME.answer    the answer (else "NAME answers: I read N bytes of prompt.")
  NAME.usage     the usage object to report with --json (JSON; else
                 {"input_tokens": prompt bytes, "output_tokens": answer bytes})
  NAME.first     text printed (and flushed) first; the tool then waits until
                 NAME.release exists before it prints the rest of the answer
                 and ends: a test sees the streamed text while the tool runs,
                 without guessing how long anything takes
  NAME.first_at  written when the first text left: time.monotonic()
  NAME.calls     one line per run (the prompt's length)
Text mode prints the answer; --json prints {"result": answer, "usage": {...}}.
"""
import json
import os
import sys
import time


def setting(directory, name):
    path = os.path.join(directory, name)
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read().decode()
    return None


def main():
    name = sys.argv[1]
    as_json = "--json" in sys.argv[2:]
    directory = os.environ.get("FAKE_AI_DIR", "/nonexistent")
    prompt = sys.stdin.buffer.read()
    with open(os.path.join(directory, name + ".calls"), "a") as f:
        f.write("%d\n" % len(prompt))
    answer = setting(directory, name + ".answer") or (
        "%s answers: I read %d bytes of prompt." % (name, len(prompt)))
    first = setting(directory, name + ".first")
    out = sys.stdout
    if first is not None:
        #  When the first text left (CLOCK_MONOTONIC, for bench/bench_stream.py)
        left = time.monotonic()
        if not as_json:
            out.write(first)
            out.flush()
        with open(os.path.join(directory, name + ".first_at.tmp"), "w") as f:
            f.write("%.6f\n" % left)
        os.rename(os.path.join(directory, name + ".first_at.tmp"),
                  os.path.join(directory, name + ".first_at"))
        release = os.path.join(directory, name + ".release")
        #  Bounded: the invite's own timeout ends a test that never releases
        deadline = time.monotonic() + 300
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not as_json:
            answer = answer[len(first):] if answer.startswith(first) else answer
    if as_json:
        usage = setting(directory, name + ".usage")
        usage = json.loads(usage) if usage else {"input_tokens": len(prompt),
                                                 "output_tokens": len(answer)}
        out.write(json.dumps({"result": answer, "usage": usage}) + "\n")
    else:
        out.write(answer + "\n")
    out.flush()


if __name__ == "__main__":
    main()
