"""test_docs.py — README, SKILL.md and docs/*.md agree with what ai-peer says it does.

The command list of `ai-peer --help` is the truth: every command in it is in README's
command table and in skills/ai-peer/SKILL.md; every flag a document writes after
`ai-peer <command>` is in `ai-peer <command> --help`; every flag of a command's help is
in README's rows for that command; and the MCP tools README and SKILL.md name are the
ones `ai-peer mcp` lists. So the docs cannot drift from the binary again.
"""
import glob
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aiptest  # noqa: E402
from aiptest import AI_PEER, SOURCE_DIR, AipTestCase  # noqa: E402

FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[ni])(?![\w-])")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
#  `ai-peer <command>` that starts a code span or a code line (or a command after `&&`,
#  `;`, `|`, `$(` or `-- `, after VAR=value), up to the end of the line, a comment or a pipe
INVOCATION = re.compile(r"(?:^|&&|;|\|\s|\$\(|--\s)\s*(?:[A-Z_]+=\S*\s+)*"
                        r"ai-peer\s+([a-z]+)([^#`|;&)\n]*)", re.M)
#  Flags in the docs that belong to something else (an agent's own CLI)
FOREIGN = {"--scope user"}


def read(*parts):
    with open(os.path.join(SOURCE_DIR, *parts), encoding="utf-8") as f:
        return f.read()


def help_text(*args):
    p = subprocess.run([AI_PEER] + list(args) + ["--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30,
                       env=dict(os.environ, AI_PEERS_HOME="/nonexistent/aip-docs-test"))
    assert p.returncode == 0, (args, p.returncode, p.stderr)
    return p.stdout.decode()


def code_text(markdown):
    """The code of a Markdown text: its fenced blocks and its code spans."""
    parts = []
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            parts.append(line)
        else:
            parts.extend(CODE_SPAN.findall(line.replace("\\|", "|")))
    return parts


def readme_rows(readme):
    """README's command table: (usage cell, whole row) per row."""
    rows = []
    for line in readme.splitlines():
        if line.startswith("| `ai-peer"):
            cells = re.split(r"(?<!\\)\|", line)
            rows.append((cells[1], line.replace("\\|", "|")))
    return rows


class TestDocsMatchHelp(AipTestCase):

    @classmethod
    def setUpClass(cls):
        text = help_text()
        cls.commands = re.findall(r"^  ([a-z]+)\s{2,}\S", text, re.M)
        cls.help = {c: help_text(c) for c in cls.commands}
        cls.flags = {c: set(FLAG.findall(h)) | {"--help"} for c, h in cls.help.items()}

    def test_help_lists_the_commands(self):
        for c in ("room", "chat", "invite", "quick", "discuss", "usage", "inbox", "mcp",
                  "hooks", "web", "daemon"):
            self.assertIn(c, self.commands)
        for c, h in self.help.items():
            self.assertIn("Usage: ai-peer " + c, h, "%s --help" % c)

    def test_readme_table_has_every_command(self):
        rows = readme_rows(read("README.md"))
        self.assertGreater(len(rows), 20)
        documented = set()
        for usage, _ in rows:
            spans = CODE_SPAN.findall(usage.replace("\\|", "|"))
            for span in spans:
                m = re.match(r"ai-peer\s+([a-z]+)", span)
                word = m.group(1) if m else span.split()[0]
                documented.add(word)
        missing = [c for c in self.commands if c not in documented]
        self.assertEqual(missing, [], "commands of 'ai-peer --help' not in README's table")

    def test_readme_rows_name_every_flag_of_help(self):
        rows = readme_rows(read("README.md"))
        by_command = {}
        for usage, row in rows:
            m = re.match(r"\s*`ai-peer\s+([a-z]+)", usage)
            by_command.setdefault(m.group(1), []).append(row)
        undocumented = {}
        for c in self.commands:
            if c in ("jobs", "wait", "cancel"):
                text = " ".join(r for r in by_command.get("invite", []) if "--async" in r)
            else:
                text = " ".join(by_command.get(c, []))
            flags = sorted(f for f in self.flags[c] - {"--help"} if f not in
                           set(FLAG.findall(text)))
            if flags:
                undocumented[c] = flags
        self.assertEqual(undocumented, {}, "flags of 'ai-peer <command> --help' missing in "
                                           "README's table")

    def check_invocations(self, name, markdown):
        wrong = []
        for code in code_text(markdown):
            for m in INVOCATION.finditer(code):
                command, rest = m.group(1), m.group(2)
                if command not in self.flags:
                    wrong.append("%s: 'ai-peer %s' is no command" % (name, command))
                    continue
                if any(f in rest for f in FOREIGN) and "install" not in rest:
                    continue
                for flag in FLAG.findall(rest):
                    if flag not in self.flags[command]:
                        wrong.append("%s: 'ai-peer %s%s': %s is not in 'ai-peer %s --help'"
                                     % (name, command, rest.rstrip(), flag, command))
        return wrong

    def test_every_documented_flag_exists(self):
        wrong = []
        files = ["README.md", os.path.join("skills", "ai-peer", "SKILL.md")]
        files += sorted(os.path.relpath(p, SOURCE_DIR)
                        for p in glob.glob(os.path.join(SOURCE_DIR, "docs", "*.md")))
        seen = 0
        for f in files:
            text = read(f)
            seen += len(INVOCATION.findall("\n".join(code_text(text))))
            wrong += self.check_invocations(f, text)
        self.assertGreater(seen, 50, "the invocations were not found: the parser is broken")
        self.assertEqual(wrong, [])

    def test_skill_names_every_command(self):
        skill = "\n".join(code_text(read("skills", "ai-peer", "SKILL.md")))
        named = {m.group(1) for m in INVOCATION.finditer(skill)}
        missing = [c for c in self.commands if c not in named]
        self.assertEqual(missing, [], "commands of 'ai-peer --help' SKILL.md never shows")

    def test_checker_catches_drift(self):
        """The checks fail on a made-up flag and on a missing command."""
        self.assertTrue(self.check_invocations("x", "`ai-peer invite --tool c --no-such-flag`"))
        self.assertTrue(self.check_invocations("x", "```\nai-peer frobnicate\n```"))
        self.assertFalse(self.check_invocations("x", "`ai-peer invite --tool c --fresh`"))


class TestMessages(AipTestCase):

    def test_hooks_names_an_unknown_agent_as_unknown(self):
        """Not 'use ai-peer mcp install foo' (no such agent there either)."""
        for action in ("status", "install"):
            e = self.fail("hooks", action, "foo")
            self.assertIn("unknown agent 'foo'", e)
            self.assertIn("claude-code, gemini and codex", e)
            self.assertNotIn("mcp install foo", e)
        self.assertIn("mcp install opencode", self.fail("hooks", "install", "opencode"))


    def test_chat_i_names_the_unknown_command(self):
        """It said 'unknown command: /help lists them', as if /help were unknown."""
        room = self.new_room()
        r = self.run_cli("chat", room, "-i", input=b"/frob now\n")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("unknown command /frob (/help lists them)", r.stderr.decode())
        self.assertEqual(r.doc["data"]["sent"], 0)


class TestMcpToolsDocumented(AipTestCase):

    def test_readme_and_skill_name_the_tools_mcp_lists(self):
        p = subprocess.Popen([AI_PEER, "mcp", "--tool", "codex"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env)
        self.addCleanup(self.stop_daemons)
        try:
            for rid, method, params in ((1, "initialize", {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "docs-test", "version": "1"}}),
                    (None, "notifications/initialized", None), (2, "tools/list", {})):
                msg = {"jsonrpc": "2.0", "method": method}
                if rid is not None:
                    msg["id"] = rid
                if params is not None:
                    msg["params"] = params
                p.stdin.write((json.dumps(msg) + "\n").encode())
                p.stdin.flush()
                if rid is not None:
                    reply = json.loads(p.stdout.readline())
                    self.assertEqual(reply.get("id"), rid, reply)
            tools = {t["name"]: t for t in reply["result"]["tools"]}
            names = sorted(tools)
        finally:
            p.stdin.close()
            p.wait(timeout=30)
            p.stdout.close()
            p.stderr.close()
        self.assertGreater(len(names), 10)
        readme = read("README.md")
        row = [r for _, r in readme_rows(readme) if r.startswith("| `ai-peer mcp [")][0]
        listed = re.findall(r"`([a-z_]+)`", row.split("|")[2])
        self.assertEqual(sorted(listed), names, "README's mcp row")
        self.assertIn("the %d tools" % len(names), row)
        skill = read("skills", "ai-peer", "SKILL.md")
        section = skill.split("## MCP tools", 1)[1].split("\n## ", 1)[0]
        missing = [n for n in names if not re.search(r"`%s\b" % n, section)]
        self.assertEqual(missing, [], "MCP tools SKILL.md does not name")
        #  `chat_read {room, n}`: every argument SKILL.md shows is in the tool's schema
        wrong = []
        shown = re.findall(r"`([a-z_]+) \{([^}`]*)\}`", section)
        self.assertGreater(len(shown), 8)
        for name, args in shown:
            props = tools[name]["inputSchema"].get("properties", {}) if name in tools else {}
            for arg in re.findall(r"(?:^|,)\s*([a-z_]+)", args):
                if arg not in props:
                    wrong.append("%s {%s}" % (name, arg))
        self.assertEqual(wrong, [], "SKILL.md's MCP arguments that the tools do not take")
        #  docs/mcp.md's table: the arguments of each tool, exactly its schema's
        table = {}
        for line in read("docs", "mcp.md").replace("\\|", "/").splitlines():
            m = re.match(r"\| `([a-z_]+)` \| ([^|]*) \|", line)
            if m and m.group(1) in tools:
                args = re.sub(r"\([^)]*\)", "", m.group(2))
                table[m.group(1)] = set(re.findall(r"(?:^|,)\s*([a-z_]+)", args))
        self.assertEqual(sorted(table), names, "docs/mcp.md's tool table")
        for name in names:
            props = set(tools[name]["inputSchema"].get("properties", {}))
            self.assertEqual(table[name], props, "docs/mcp.md: the arguments of " + name)


if __name__ == "__main__":
    aiptest.main()
