#!/usr/bin/env python3
"""docs-examples.py — the example commands of README.md and the man pages, for
tests/e2e/docs.bats, which runs them on a demo mount (routefs-sim + examples/demo.json).

Which code blocks are examples, and which of those run
------------------------------------------------------
A code block is a fenced block in Markdown (``` ... ```) or an .EX/.EE block in a man
page.

1. Data, never run: a fenced block whose info string is not empty, sh, shell, bash or
   console (```json, ```text, ```make ...); and a block whose first command word is not
   a command (not a shell builtin or keyword, not routefs or routefs-sim, not a program
   on PATH): JSON, directory trees, make rules, fstab lines, source listings.

2. Run: an example that works on the demo mount as printed, which it says by naming the
   mount the way a reader of that text has it:
     mnt/    the mount point `make run` uses in the source tree (README.md), and
     ~/llm   the mount point of the man pages.
   Examples that name a placeholder (M/, MOUNT, MOUNTPOINT) are illustrative.

3. Markers, in an HTML comment (Markdown) or a roff comment (.\\") on the lines before the
   block (only blank lines, other markers or .PP/.RS/.IP-style requests in between):
     docs-test: skip REASON   not run; the test prints REASON (network, keys, ...)
     docs-test: run           run even though it names neither mount
     docs-test: check CMD     after the block ran, CMD (plain shell, same directory and
                              environment) must succeed: what the text says it did
   An example that names an API key assignment (..._API_KEY=) or systemctl is skipped
   even without a marker (it needs a real key, or changes the user's system).

How a block runs
----------------
Each block runs in its own `bash -e -o pipefail`, from a directory that holds the demo
mount as mnt/ and the fixtures brief.txt, items/ (2 files) and batch/ (2 files), with
HOME set so that ~/llm is the same mount, routefs and routefs-sim on PATH, and P set to
the simulator's port (as routefs-sim(1)'s examples use it).
  - A block without "$ " lines is a script: every command must succeed.
  - A block with "$ " lines is a transcript: each "$ " line (with its backslash
    continuation lines) is a command line, run as a reader types it (without -e, so
    "cmd; echo $?" can show a failure) that must end with status 0, and the lines after
    it, up to the next "$ " line, are its expected standard output.  In expected output, "..."
    matches any text within a line, and a line that is only "..." matches any number of
    lines.

Usage
-----
  docs-examples.py list FILE...          one line per code block: ID SOURCE:LINE STATUS WHY
  docs-examples.py scripts DIR FILE...   DIR/ID.sh per block that runs, DIR/index.tsv
                                         (ID, SOURCE:LINE, run|skip|data|illustrative,
                                         why); DIR/ID.expected-N for transcript outputs
  docs-examples.py match EXPECTED ACTUAL exit 0 when ACTUAL matches EXPECTED
"""

import os
import re
import shutil
import sys

RUN_SHELLS = {"", "sh", "shell", "bash", "console"}
BUILTINS = set("""
    . : [ alias bg bind break builtin caller cd command compgen complete continue declare
    dirs disown echo enable eval exec exit export false fc fg getopts hash help history
    jobs kill let local logout mapfile popd printf pushd pwd read readarray readonly
    return set shift shopt source suspend test times trap true type typeset ulimit umask
    unalias unset wait for while until if case do done then else fi function time
    { ( !
""".split())
OWN_COMMANDS = {"routefs", "routefs-sim"}
MOUNT_NAMES = re.compile(r"(?:^|[\s'\"=(<>|;&])(?:mnt/|~/llm(?:\b|/|$))")
AUTO_SKIPS = [
    (re.compile(r"[A-Z_]*API_KEY=|sk-or-"), "needs a real API key and the network"),
    (re.compile(r"\bsystemctl\b"), "changes the user's systemd set-up"),
]
MARKER = re.compile(r"docs-test:\s*(skip|run|check)\b\s*(.*?)\s*(?:-->)?\s*$")


class Block:
    def __init__(self, source, line, text, info=""):
        self.source = source      # file name as given
        self.line = line          # 1-based line of the block's first line of text
        self.text = text          # the commands as a reader sees them
        self.info = info          # Markdown info string ("" for man pages)
        self.markers = []         # (kind, argument) in order
        self.status = ""
        self.why = ""


# ---- Markdown ----

def markdown_blocks(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    blocks, pending, i = [], [], 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^(\s*)(```+|~~~+)\s*([^`\s]*)", line)
        if fence:
            indent, mark, info = fence.group(1), fence.group(2), fence.group(3)
            body, j = [], i + 1
            while j < len(lines) and not lines[j].strip().startswith(mark[:3]):
                body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j])
                j += 1
            b = Block(path, i + 2, "\n".join(body), info.lower())
            b.markers = pending
            blocks.append(b)
            pending, i = [], j + 1
            continue
        m = re.match(r"^\s*<!--\s*(.*?)\s*-->\s*$", line)
        if m and MARKER.match(m.group(1)):
            mk = MARKER.match(m.group(1))
            pending.append((mk.group(1), mk.group(2)))
        elif line.strip():
            pending = []          # markers belong to the very next block
        i += 1
    return blocks


# ---- man pages (roff) ----

ROFF_CHARS = {
    "aq": "'", "dq": '"', "em": "--", "en": "-", "lq": '"', "rq": '"', "oq": "'",
    "cq": "'", "ha": "^", "ti": "~", "rs": "\\", "bu": "*", "<=": "<=", ">=": ">=",
}


def roff_text(line):
    """The text a reader sees in an .EX line."""
    out, i = [], 0
    while i < len(line):
        c = line[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = line[i + 1] if i + 1 < len(line) else ""
        if nxt == "-":
            out.append("-"); i += 2
        elif nxt == "e" or nxt == "\\":
            out.append("\\"); i += 2
        elif nxt == "&" or nxt == "c":
            i += 2
        elif nxt == "(":
            out.append(ROFF_CHARS.get(line[i + 2:i + 4], "")); i += 4
        elif nxt == "[":
            end = line.find("]", i)
            out.append(ROFF_CHARS.get(line[i + 2:end], "")); i = end + 1
        elif nxt == "f":
            i += 3 if line[i + 2:i + 3] != "(" else 5
        elif nxt == " ":
            out.append(" "); i += 2
        elif nxt == "t":
            out.append("\t"); i += 2
        else:
            out.append(nxt); i += 2
    return "".join(out)


def man_blocks(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    blocks, pending, i = [], [], 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(".EX"):
            body, j = [], i + 1
            while j < len(lines) and not lines[j].startswith(".EE"):
                if not lines[j].startswith('.\\"'):
                    body.append(roff_text(lines[j]))
                j += 1
            b = Block(path, i + 2, "\n".join(body))
            b.markers = pending
            blocks.append(b)
            pending, i = [], j + 1
            continue
        if line.startswith('.\\"') or line.startswith("'\\\""):
            mk = MARKER.search(line)
            if mk:
                pending.append((mk.group(1), mk.group(2)))
        elif re.match(r"^\.(PP|P|LP|RS|RE|IP|TP|br|sp|in)\b", line) or not line.strip():
            pass                   # layout between the markers and their block
        else:
            pending = []
        i += 1
    return blocks


# ---- classification ----

def first_word(text):
    for line in text.split("\n"):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("$ "):
            s = s[2:].strip()
        word = s.split()[0]
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", word):
            return "export"    # an assignment: a command
        return word
    return ""


def is_command(word):
    if not word:
        return False
    if word in BUILTINS or word in OWN_COMMANDS:
        return True
    if "/" in word:
        return os.path.isfile(word) and os.access(word, os.X_OK)
    return shutil.which(word) is not None


def classify(b):
    kinds = [k for k, _ in b.markers]
    if b.info not in RUN_SHELLS:
        b.status, b.why = "data", "```" + b.info
        return
    if "skip" in kinds:
        b.status, b.why = "skip", next(a for k, a in b.markers if k == "skip") or "marked skip"
        return
    if not is_command(first_word(b.text)):
        b.status, b.why = "data", "not a command: " + first_word(b.text)[:40]
        return
    for pattern, why in AUTO_SKIPS:
        if pattern.search(b.text):
            b.status, b.why = "skip", why
            return
    if "run" in kinds or MOUNT_NAMES.search(b.text):
        b.status, b.why = "run", "marked run" if "run" in kinds else "uses the demo mount"
        return
    b.status, b.why = "illustrative", "names no demo mount (mnt/, ~/llm)"


def blocks_of(paths):
    out = []
    for p in paths:
        bs = man_blocks(p) if re.search(r"\.[1-9]$", p) else markdown_blocks(p)
        for b in bs:
            classify(b)
        out.extend(bs)
    return out


# ---- scripts ----

def transcript(text):
    """[(command, [expected lines])] for a block with "$ " lines, else None."""
    lines = text.split("\n")
    if not any(l.startswith("$ ") for l in lines):
        return None
    steps, i = [], 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            i += 1
            continue
        cmd = [lines[i][2:]]
        while cmd[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            cmd.append(lines[i])
        expected = []
        i += 1
        while i < len(lines) and not lines[i].startswith("$ "):
            expected.append(lines[i])
            i += 1
        while expected and not expected[-1].strip():
            expected.pop()
        steps.append(("\n".join(cmd), expected))
    return steps


def shell_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def write_scripts(outdir, blocks):
    os.makedirs(outdir, exist_ok=True)
    me = os.path.abspath(__file__)
    with open(os.path.join(outdir, "index.tsv"), "w") as index:
        for n, b in enumerate(blocks, 1):
            bid = "%03d" % n
            where = "%s:%d" % (b.source, b.line)
            index.write("%s\t%s\t%s\t%s\n" % (bid, where, b.status, b.why))
            if b.status != "run":
                continue
            body = ["# %s" % where, "set -e -o pipefail"]
            steps = transcript(b.text)
            if steps is None:
                body.append(b.text)
            else:
                for k, (cmd, expected) in enumerate(steps, 1):
                    exp = os.path.join(outdir, "%s.expected-%d" % (bid, k))
                    with open(exp, "w") as f:
                        f.write("\n".join(expected) + ("\n" if expected else ""))
                    act = exp.replace("expected", "actual")
                    # as a reader types it: no -e inside the command line
                    # ("cmd; echo $?" shows a failure), but it must end with status 0
                    body.append("echo '$ '%s >&2" % shell_quote(cmd.split("\n")[0]))
                    body.append("set +e\n{\n%s\n} >%s\n_rc=$?\nset -e" % (cmd, shell_quote(act)))
                    body.append('[ "$_rc" -eq 0 ] || { echo "exit status $_rc" >&2; exit 1; }')
                    body.append("python3 %s match %s %s" % (shell_quote(me), shell_quote(exp),
                                                            shell_quote(act)))
            for k, arg in b.markers:
                if k == "check":
                    body.append("echo 'check: '%s >&2" % shell_quote(arg))
                    body.append(arg)
            with open(os.path.join(outdir, bid + ".sh"), "w") as f:
                f.write("\n".join(body) + "\n")


# ---- matching ----

def matches(expected, actual):
    exp = expected.rstrip("\n").split("\n") if expected.strip() else []
    act = actual.rstrip("\n").split("\n") if actual.strip() else []
    parts = []
    for line in exp:
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*".join(re.escape(p) for p in line.split("...")) + r"\n")
    return re.fullmatch("".join(parts), "".join(l + "\n" for l in act)) is not None


def main(argv):
    if len(argv) >= 3 and argv[1] == "list":
        for n, b in enumerate(blocks_of(argv[2:]), 1):
            print("%03d %s:%d %s %s" % (n, b.source, b.line, b.status, b.why))
        return 0
    if len(argv) >= 4 and argv[1] == "scripts":
        write_scripts(argv[2], blocks_of(argv[3:]))
        return 0
    if len(argv) == 4 and argv[1] == "match":
        expected = open(argv[2], encoding="utf-8").read()
        actual = open(argv[3], encoding="utf-8", errors="replace").read()
        if matches(expected, actual):
            return 0
        sys.stderr.write("output differs from the text\n--- expected\n%s--- got\n%s---\n"
                         % (expected, actual))
        return 1
    sys.stderr.write(__doc__.split("Usage\n-----\n", 1)[1])
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
