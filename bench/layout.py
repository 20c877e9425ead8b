#!/usr/bin/env python3
"""layout.py — the tree's shape in numbers: code lines per C file, and who includes whom.

"Code lines" are the lines that are neither blank nor comment, before the module's
self-test (`aip_<noun>_test (bool verbose)` and what follows it): the self-tests
show how a module is used and may be as long as they need. Issue 15's target is
no file over ~1,000 code lines (storaged/aip_storage.c, the model file, may stay).

    bench/layout.py            the 20 largest files
    bench/layout.py --all      every file
    bench/layout.py --includes the includes (and CMake sources) that cross from one
                               program into another

tests/test_layout.py checks both rules with these functions.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#  The programs whose code is their own: a daemon's files include only its own
#  headers and proto/ (the one shared floor); the CLI is a client like them
PROGRAMS = ("brokerd", "storaged", "spawnd", "relayd", "webd", "cli")
SOURCE_DIRS = PROGRAMS + ("proto",)
SELFTEST = re.compile(r"^(?:\w+[ \w*]*\n)?\w+_test \(bool verbose\)", re.M)
COMMENT = re.compile(r"/\*.*?\*/", re.S)
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def c_files(root=ROOT):
    """Every .c and .h file of the programs and proto/, as paths relative to root."""
    out = []
    for top in SOURCE_DIRS:
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            if "node_modules" in dirpath:
                continue
            for name in names:
                if name.endswith((".c", ".h")):
                    out.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(out)


def code_lines(text):
    """Non-blank, non-comment lines before the self-test function."""
    m = SELFTEST.search(text)
    if m:
        text = text[:m.start()]
    #  Keep the line count of a block comment's lines: each becomes empty
    text = COMMENT.sub(lambda c: "\n" * c.group(0).count("\n"), text)
    return sum(1 for line in text.split("\n")
               if line.strip() and not line.strip().startswith("//"))


def sizes(root=ROOT):
    """[(code lines, path)], largest first."""
    out = []
    for path in c_files(root):
        with open(os.path.join(root, path), encoding="utf-8") as f:
            out.append((code_lines(f.read()), path))
    return sorted(out, reverse=True)


def crossing_includes(root=ROOT):
    """[(path, included, program it belongs to)]: a program's file that includes a
    header of another program (resolved the way the compiler does: beside the file,
    then the program's own directory, then proto/)."""
    out = []
    for path in c_files(root):
        program = path.split(os.sep)[0]
        if program == "proto":
            continue
        with open(os.path.join(root, path), encoding="utf-8") as f:
            text = f.read()
        for inc in INCLUDE.findall(text):
            here = os.path.normpath(os.path.join(os.path.dirname(path), inc))
            candidates = [here, os.path.join(program, inc), os.path.join("proto", inc)]
            found = next((c for c in candidates if os.path.exists(os.path.join(root, c))), None)
            if found is None:
                continue        # a system header written with quotes
            owner = found.split(os.sep)[0]
            if owner not in (program, "proto"):
                out.append((path, inc, owner))
    return out


#  The daemon and CLI executables, and the directory whose code each may compile
TARGETS = {"brokerd": "brokerd", "storaged": "storaged", "spawnd": "spawnd",
           "relayd": "relayd", "webd": "webd", "ai-peer": "cli", "ai-peer-interactive": "cli"}
CMAKE_CALL = re.compile(r"\b(add_executable|set|file)\s*\(([^)]*)\)")


def crossing_sources(root=ROOT):
    """[(target, source)]: a daemon's or the CLI's executable built from another
    program's source file (CMakeLists.txt; variables set or globbed there expanded)."""
    with open(os.path.join(root, "CMakeLists.txt"), encoding="utf-8") as f:
        text = f.read()
    variables, out = {}, []
    for call, args in CMAKE_CALL.findall(text):
        words = args.split()
        if call == "file" and words[:1] == ["GLOB"]:
            variables[words[1]] = [w for w in words[2:] if w != "CONFIGURE_DEPENDS"]
        elif call == "set" and words:
            variables[words[0]] = words[1:]
        elif call == "add_executable" and words and words[0] in TARGETS:
            sources, todo = [], list(words[1:])
            while todo:
                w = todo.pop(0)
                var = re.fullmatch(r"\$\{(\w+)\}", w)
                if var and var.group(1) in variables:
                    todo = variables[var.group(1)] + todo
                else:
                    sources.append(w)
            for src in sources:
                if src.startswith("${CMAKE_BINARY_DIR}"):
                    continue    # generated (the web page's assets)
                rel = src.replace("${CMAKE_SOURCE_DIR}/", "")
                if rel.split("/")[0] != TARGETS[words[0]]:
                    out.append((words[0], rel))
    return out


def main(argv):
    if "--includes" in argv:
        rows = crossing_includes()
        for path, inc, owner in rows:
            print(f"{path}: includes \"{inc}\" of {owner}")
        print(f"{len(rows)} include(s) cross from one program into another")
        for target, src in crossing_sources():
            print(f"{target} compiles {src}")
        return 0
    rows = sizes()
    print("| code lines | file |")
    print("|---|---|")
    for n, path in rows if "--all" in argv else rows[:20]:
        print(f"| {n} | {path} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
