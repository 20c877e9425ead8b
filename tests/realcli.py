"""realcli.py — run the real AI CLIs offline against a FakeModel.

The four CLIs come from npm (tests/node, exact versions in its lock):
claude (@anthropic-ai/claude-code), codex (@openai/codex), gemini
(@google/gemini-cli), opencode (opencode-ai). For each, env(tool, fake,
home) writes the tool's config under a temporary HOME (never the user's)
and returns the environment that points it at the fake server:

  claude    ANTHROPIC_BASE_URL=<fake>, ANTHROPIC_API_KEY placeholder,
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 (no telemetry,
            update check, error reports)
  codex     CODEX_HOME=<home>/.codex with config.toml: model_provider
            "fakemodel" (base_url <fake>/v1, wire_api "responses", env_key
            FAKEMODEL_OPENAI_KEY, no retries), plugins/apps/update off
  gemini    GEMINI_API_KEY placeholder, GOOGLE_GEMINI_BASE_URL=<fake>,
            ~/.gemini/settings.json: api-key auth, statistics, telemetry
            and update checks off
  opencode  XDG_* under <home>, ~/.config/opencode/opencode.json: provider
            "fakemodel" (@ai-sdk/openai-compatible, baseURL <fake>/v1,
            Chat Completions), OPENCODE_DISABLE_MODELS_FETCH etc.

All four also get HTTP(S)_PROXY=<fake> with NO_PROXY for loopback, so any
attempt to reach the internet lands on the fake as a CONNECT (recorded,
refused: FakeModel.escapes()) rather than leaving the machine.

available(tool) says whether a CLI is installed and runnable here.
"""
import json
import os
import shutil
import subprocess
import threading
import time

SOURCE_DIR = os.environ.get("AIP_SOURCE_DIR",
                            os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN_DIR = os.path.join(SOURCE_DIR, "tests", "node", "node_modules", ".bin")
TOOLS = ("claude", "codex", "gemini", "opencode")
VERSIONS = {"claude": "2.1.332", "codex": "0.171.0", "gemini": "0.61.0",
            "opencode": "1.18.33"}
#  The model each CLI is told to use (codex knows this slug's metadata;
#  opencode's provider lists it)
MODELS = {"claude": "claude-sonnet-4-5", "codex": "gpt-5.5",
          "gemini": "gemini-2.5-flash", "opencode": "fake-model"}
CODEX_KEY_VAR = "FAKEMODEL_OPENAI_KEY"
#  Variables of the caller's environment that must not reach a CLI: they
#  would point it at a real account, a real endpoint or the user's config
SCRUB_PREFIXES = ("ANTHROPIC_", "CLAUDE", "OPENAI_", "CODEX_", "GEMINI_", "GOOGLE_",
                  "OPENCODE", "XDG_", "AWS_", "AZURE_", "VERTEX", "CLOUDSDK_")
SCRUB = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy",
         "https_proxy", "all_proxy", "no_proxy", "NODE_OPTIONS")


def path_entry():
    """The directory to put first on PATH: the real CLIs."""
    return BIN_DIR


def binary(tool):
    return os.path.join(BIN_DIR, tool)


def available(tool):
    """(True, "") if the CLI runs here, else (False, why)."""
    exe = binary(tool)
    if not os.path.exists(exe):
        return False, "%s is not installed in %s (scripts/setup.sh runs npm ci there)" % (
            tool, BIN_DIR)
    if tool in ("codex", "gemini") and not shutil.which("node"):
        return False, "%s needs node, which is not on PATH" % tool
    return True, ""


def base_env(home, base=None):
    """The caller's environment (or base) without anything that points at
    a real account, endpoint or config; HOME and the XDG dirs in home."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not k.startswith(SCRUB_PREFIXES) and k not in SCRUB}
    env["HOME"] = home
    env["XDG_CONFIG_HOME"] = os.path.join(home, ".config")
    env["XDG_DATA_HOME"] = os.path.join(home, ".local", "share")
    env["XDG_CACHE_HOME"] = os.path.join(home, ".cache")
    env["XDG_STATE_HOME"] = os.path.join(home, ".local", "state")
    env["PATH"] = BIN_DIR + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env.pop("TERM", None)
    env["NO_COLOR"] = "1"
    return env


def _proxy(fake):
    return {"HTTPS_PROXY": fake.url, "HTTP_PROXY": fake.url, "ALL_PROXY": fake.url,
            "https_proxy": fake.url, "http_proxy": fake.url,
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def claude_env(fake, home):
    _write(os.path.join(home, ".claude", "settings.json"), json.dumps({
        "model": MODELS["claude"], "autoUpdates": False,
        "env": {"DISABLE_AUTOUPDATER": "1"}}, indent=2))
    return {"ANTHROPIC_BASE_URL": fake.url, "ANTHROPIC_API_KEY": "sk-ant-fakemodel",
            "ANTHROPIC_MODEL": MODELS["claude"],
            "ANTHROPIC_SMALL_FAST_MODEL": MODELS["claude"],
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1", "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1", "DISABLE_BUG_COMMAND": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0", "ANTHROPIC_MAX_RETRIES": "0"}


def codex_env(fake, home):
    codex_home = os.path.join(home, ".codex")
    _write(os.path.join(codex_home, "config.toml"), """\
# written by tests/realcli.py: codex offline against the fake model server
model = "%(model)s"
model_provider = "fakemodel"
check_for_update_on_startup = false

[model_providers.fakemodel]
name = "fakemodel"
base_url = "%(url)s/v1"
env_key = "%(key)s"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 60000

[features]
plugins = false
remote_plugin = false
apps = false
in_app_updates = false
plugin_sharing = false
tool_suggest = false
skill_mcp_dependency_install = false

[analytics]
enabled = false
""" % {"model": MODELS["codex"], "url": fake.url, "key": CODEX_KEY_VAR})
    return {"CODEX_HOME": codex_home, CODEX_KEY_VAR: "sk-fakemodel"}


def gemini_env(fake, home):
    _write(os.path.join(home, ".gemini", "settings.json"), json.dumps({
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "model": {"name": MODELS["gemini"]},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        # one attempt: gemini retries a 429 ten times with 5-30 s backoff
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True,
                    "maxAttempts": 1}}, indent=2))
    return {"GEMINI_API_KEY": "fakemodel-gemini-key", "GOOGLE_GEMINI_BASE_URL": fake.url,
            "GEMINI_CLI_NO_RELAUNCH": "true"}


def opencode_env(fake, home):
    _write(os.path.join(home, ".config", "opencode", "opencode.json"), json.dumps({
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False, "share": "disabled",
        "model": "fakemodel/" + MODELS["opencode"],
        "small_model": "fakemodel/" + MODELS["opencode"],
        "provider": {"fakemodel": {
            "npm": "@ai-sdk/openai-compatible", "name": "fakemodel",
            "options": {"baseURL": fake.url + "/v1", "apiKey": "sk-fakemodel"},
            "models": {MODELS["opencode"]: {"name": "fake model",
                                            "limit": {"context": 200000,
                                                      "output": 32000}}}}}}, indent=2))
    # opencode installs @opencode-ai/plugin from registry.npmjs.org into each
    # config dir unless node_modules exists and package-lock.json already
    # lists what package.json asks for: say it is there
    cfg = os.path.join(home, ".config", "opencode")
    os.makedirs(os.path.join(cfg, "node_modules"), exist_ok=True)
    deps = {"@opencode-ai/plugin": VERSIONS["opencode"]}
    _write(os.path.join(cfg, "package.json"), json.dumps({"dependencies": deps}))
    _write(os.path.join(cfg, "package-lock.json"), json.dumps(
        {"lockfileVersion": 3, "packages": {"": {"dependencies": deps}}}))
    return {"OPENCODE_DISABLE_MODELS_FETCH": "1", "OPENCODE_DISABLE_AUTOUPDATE": "1",
            "OPENCODE_DISABLE_LSP_DOWNLOAD": "1", "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
            "OPENCODE_DISABLE_SHARE": "1", "OPENCODE_DISABLE_CLAUDE_CODE": "1",
            "OPENCODE_DISABLE_EXTERNAL_SKILLS": "1"}


_ENV = {"claude": claude_env, "codex": codex_env, "gemini": gemini_env,
        "opencode": opencode_env}


def env(tool, fake, home, base=None):
    """The whole environment that runs `tool` offline against `fake`, with
    its config written under `home`. tool may be "all" (one HOME for the
    four, as the ai-peer daemons need). base: the environment to start
    from (default os.environ), scrubbed of real accounts and endpoints."""
    out = base_env(home, base)
    out.update(_proxy(fake))
    for t in (TOOLS if tool == "all" else (tool,)):
        out.update(_ENV[t](fake, home))
    return out


#  The structured commands the sessions issue names (their --help is the
#  contract); the prompt always comes on stdin
def command(tool, resume=None):
    if tool == "claude":
        argv = [binary("claude"), "-p", "--output-format", "stream-json", "--verbose",
                "--include-partial-messages"]
        return argv + (["--resume", resume] if resume else [])
    if tool == "gemini":
        argv = [binary("gemini"), "-p", "", "--output-format", "stream-json", "--skip-trust"]
        return argv + (["--resume", resume] if resume else [])
    if tool == "codex":
        if resume:
            return [binary("codex"), "exec", "--json", "--skip-git-repo-check", "resume",
                    resume, "-"]
        return [binary("codex"), "exec", "--json", "--skip-git-repo-check", "-"]
    if tool == "opencode":
        argv = [binary("opencode"), "run", "--format", "json"]
        return argv + (["-s", resume] if resume else [])
    raise ValueError(tool)


def run(tool, fake, home, prompt, resume=None, timeout=120, cwd=None):
    """One turn of the tool's one-shot structured mode; CompletedProcess."""
    return subprocess.run(command(tool, resume), input=prompt.encode("utf-8"),
                          env=env(tool, fake, home), cwd=cwd or home,
                          capture_output=True, timeout=timeout)


class JsonRpcStdio:
    """A JSON-RPC peer over a child's stdio, one JSON object per line (codex
    app-server, opencode acp). Keeps a transcript of every line both ways."""

    def __init__(self, argv, env, cwd):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, cwd=cwd,
                                     start_new_session=True)
        self.transcript = []   # [{"dir": "send"|"recv", "line": str, "t": float}]
        self.lines = []        # received, parsed
        self._cond = threading.Condition()
        self._next_id = 0
        self._stderr = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        threading.Thread(target=self._drain_err, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                doc = json.loads(line)
            except ValueError:
                doc = None
            with self._cond:
                self.transcript.append({"dir": "recv", "line": line, "t": time.time()})
                if doc is not None:
                    self.lines.append(doc)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _drain_err(self):
        for raw in self.proc.stderr:
            self._stderr.append(raw.decode("utf-8", "replace"))

    def stderr(self):
        return "".join(self._stderr)

    def send(self, doc):
        line = json.dumps(doc, separators=(",", ":"))
        with self._cond:
            self.transcript.append({"dir": "send", "line": line, "t": time.time()})
        self.proc.stdin.write((line + "\n").encode("utf-8"))
        self.proc.stdin.flush()

    def request(self, method, params, timeout=60.0):
        self._next_id += 1
        rid = self._next_id
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        return self.wait(lambda d: d.get("id") == rid and ("result" in d or "error" in d)
                         and "method" not in d, timeout, "reply to %s" % method)

    def notify(self, method, params):
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def wait(self, pred, timeout=60.0, what="line", start=0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for d in self.lines[start:]:
                    if pred(d):
                        return d
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError("process exited (%s) before %s; stderr: %s"
                                         % (self.proc.returncode, what, self.stderr()[-2000:]))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for %s; stderr: %s"
                                         % (what, self.stderr()[-2000:]))
                self._cond.wait(min(left, 0.2))

    def answer_requests(self, handler):
        """Answer server→client requests seen so far with handler(doc) → result."""
        with self._cond:
            pending = [d for d in self.lines if "method" in d and "id" in d
                       and not d.get("_answered")]
            for d in pending:
                d["_answered"] = True
        for d in pending:
            self.send({"jsonrpc": "2.0", "id": d["id"], "result": handler(d)})

    def close(self, timeout=10.0):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, 9)
            except OSError:
                pass
            self.proc.wait()


def forget_sessions(tool, home):
    """Delete the tool's own session store under home, as if the session
    were gone (expired, another machine, a wiped cache): a resume must fail."""
    import glob
    pats = {"claude": [".claude/projects"],
            "codex": [".codex/sessions", ".codex/state_*.sqlite*",
                      ".codex/thread_history_*.sqlite*"],
            "gemini": [".gemini/tmp/*/chats"],
            "opencode": [".local/share/opencode/opencode.db*",
                         ".local/share/opencode/storage"]}[tool]
    gone = []
    for pat in pats:
        for p in glob.glob(os.path.join(home, pat)):
            if os.path.isdir(p):
                shutil.rmtree(p)
            else:
                os.unlink(p)
            gone.append(p)
    return gone
