"""Run the code blocks of README.md and of every page docs/*.md as pasted, and rewrite their shown outputs
from the current code.

    .venv/bin/python docs/readme_outputs.py            # every page, every block, full size; rewrites outputs
    .venv/bin/python docs/readme_outputs.py --check    # the same, but only reports drift (exit 1)
    .venv/bin/python docs/readme_outputs.py docs/compare.md   # one page (or several)

Each page runs in a scratch folder of its own, its blocks in order: a page needs nothing another page made.
A new page under docs/ is picked up by its name alone (tests/test_readme.py globs docs/*.md too).

The conventions it reads (tests/test_readme.py enforces them on every push, on every page):

* every code block is fenced with a language: ``bash``, ``python``, ``yaml`` or ``text``;
* a ``bash`` or ``python`` block runs as pasted, in order, in one scratch folder (the venv's ``bin`` first on
  ``PATH``), unless the line right before it is ``<!-- readme: not run — REASON -->``; a reason that says
  "CI runs it with `ARGS`" makes the test run each ``wwtune`` command of the block with those overrides
  (a reduced trial count) instead of skipping it;
* a ``python`` block whose first line is ``# name.py`` is a file: it is saved there, not run;
* a ``yaml`` block whose leading comments name a file (``# conf/study/example.yaml``) is that config file:
  saved there when the project does not ship it, compared with the shipped file when it does;
* a ``text`` block is the shown output of the nearest ``bash``/``python`` block above it (when no other
  ``text`` block comes between them). This script reruns that block at full size and writes its output
  (stdout and stderr, progress bars and log lines dropped) into the ``text`` block; the test reruns it as
  pasted (or reduced) and checks the output for drift: numbers within a tolerance for a block that ran as
  pasted, the key lines in order for a reduced run.

Progress output ("comparing a vs b … [####....] 8/39 layers 3 s", shown only when a step takes over a
second) is dropped from both the shown and the printed side, so the check does not depend on how fast or
busy the machine is.

The coordinator reruns this script after merging pages; a block's output that cannot be
produced here (a server elsewhere) belongs after a not-run block without a CI clause: it is left alone.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
LANGS = ("bash", "python", "yaml", "text")
RUNNABLE = ("bash", "python")

_FENCE = re.compile(r"^( {0,3})```\s*(\S*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*readme:(.*?)-->\s*$")
_NOT_RUN = re.compile(r"^\s*not run\s*[—–-]+\s*(?P<reason>\S.*?)\s*$")
_CI_ARGS = re.compile(r"CI runs it with `([^`]+)`")
_FILE_HEADER = re.compile(r"^#\s*(?P<path>[\w./-]+\.(?:py|ya?ml))\b")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s")


class ReadmeError(ValueError):
    """A page breaks a block convention; the message names the page and lists every place (line numbers are
    1-based)."""


def pages(root: Path = ROOT) -> list[Path]:
    """The pages whose blocks run: README.md, then every docs/*.md (sorted), whatever their number."""
    readme = root / "README.md"
    return ([readme] if readme.exists() else []) + sorted((root / "docs").glob("*.md"))


def page_name(path: Path, root: Path = ROOT) -> str:
    """``README.md``, ``docs/compare.md``: the page as a reader finds it in the repository."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


@dataclass
class Block:
    lang: str
    text: str
    line: int  # 1-based line of the opening fence
    end: int  # 1-based line of the closing fence
    not_run: str | None = None  # the reason, when marked not run
    ci_args: list[str] = field(default_factory=list)  # the reduced run's overrides, when the reason names one
    path: str | None = None  # the file this block is (python ``# x.py`` / yaml ``# conf/...``)
    output_of: int | None = None  # for a text block: index of the block whose output it shows

    @property
    def runs_as_pasted(self) -> bool:
        return self.lang in RUNNABLE and self.not_run is None and self.path is None


def parse(text: str, name: str = "README.md") -> list[Block]:
    """A page's fenced blocks with their markers; ReadmeError (naming ``name`` and each line) on any
    convention broken."""
    lines = text.splitlines()
    problems: list[str] = []
    blocks: list[Block] = []
    i, prev_blank, in_list = 0, True, False
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            indent, lang = fence.group(1), fence.group(2)
            j = i + 1
            while j < len(lines) and not re.match(rf"^{indent}```\s*$", lines[j]):
                j += 1
            if j == len(lines):
                problems.append(f"line {i + 1}: code block never closed")
                break
            body = "\n".join(
                x[len(indent) :] if x.startswith(indent) else x.lstrip() for x in lines[i + 1 : j]
            )
            if lang not in LANGS:
                problems.append(
                    f"line {i + 1}: code block language {lang or '(none)'!r}; use one of {list(LANGS)} "
                    "(commands in ```bash, shown output in ```text)"
                )
            block = Block(lang=lang, text=body + "\n", line=i + 1, end=j + 1)
            marker = _MARKER.match(lines[i - 1]) if i > 0 else None
            if marker:
                not_run = _NOT_RUN.match(marker.group(1))
                if not_run:
                    block.not_run = not_run.group("reason")
                    ci = _CI_ARGS.search(block.not_run)
                    block.ci_args = shlex.split(ci.group(1)) if ci else []
            header = _file_header(block)
            if header:
                block.path = header
            if lang == "yaml" and not header and block.not_run is None:
                problems.append(
                    f"line {i + 1}: a yaml block names the file it is in its first comment line "
                    "(# conf/<group>/<name>.yaml), or is marked <!-- readme: not run — REASON -->"
                )
            blocks.append(block)
            i, prev_blank, in_list = j + 1, False, False
            continue
        marker = _MARKER.match(line)
        if marker:
            if not _NOT_RUN.match(marker.group(1)):
                problems.append(
                    f"line {i + 1}: marker {line.strip()!r} is not '<!-- readme: not run — REASON -->' "
                    "with a reason"
                )
            elif i + 1 >= len(lines) or not _FENCE.match(lines[i + 1]):
                problems.append(f"line {i + 1}: a not-run marker must be the line right before a code block")
        if line.strip() and not line.startswith(" ") and _LIST_ITEM.match(line):
            in_list = True
        elif line.strip() and not line.startswith(" "):
            in_list = False
        if prev_blank and line.startswith("    ") and line.strip() and not in_list:
            problems.append(
                f"line {i + 1}: indented code block ({line.strip()[:40]!r}); fence it as ```bash (run by the "
                "README test, or marked not run) or ```text (shown output)"
            )
        prev_blank = not line.strip()
        i += 1
    last_code: int | None = None
    for k, block in enumerate(blocks):
        if block.lang in RUNNABLE and block.path is None:
            last_code = k
        elif block.lang == "text":
            block.output_of, last_code = last_code, None
    if problems:
        raise ReadmeError(f"{name}:\n  " + "\n  ".join(f"{name} {p}" for p in problems))
    return blocks


def _file_header(block: Block) -> str | None:
    if block.lang not in ("python", "yaml"):
        return None
    for line in block.text.splitlines():
        if not line.startswith("#"):
            return None
        found = _FILE_HEADER.match(line)
        if found and (block.lang == "yaml" or line == block.text.splitlines()[0]):
            return found.group("path")
    return None


# ---------------------------------------------------------------------------------------------------------
# running blocks


def environment(workdir: Path) -> dict[str, str]:
    """The venv's bin first on PATH (``python``, ``wwtune``), one thread, no display."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg", HYDRA_FULL_ERROR="0")
    env.pop("VIRTUAL_ENV", None)
    env["PWD"] = str(workdir)
    return env


def reduced(block: Block) -> str:
    """The block's text with the CI overrides on every ``wwtune`` command (replacing a key it sets)."""
    if not block.ci_args:
        return block.text
    out = []
    for line in block.text.splitlines():
        found = re.search(r"(python -m wwtune|(?<![\w/.])wwtune)(?! analyze)\b", line)
        if found:
            missing = []
            for arg in block.ci_args:
                key = re.escape(arg.partition("=")[0])
                if re.search(rf"(?<=\s){key}=\S+", line):
                    line = re.sub(rf"(?<=\s){key}=\S+", arg, line)
                else:
                    missing.append(arg)
            if missing:  # next to the command's other overrides: Hydra parses them as one run of arguments
                first = re.compile(r"\s[\w.+~/-]+=").search(line, found.end())
                at = first.start() if first else found.end()
                line = f"{line[:at]} {' '.join(missing)}{line[at:]}"
        out.append(line)
    return "\n".join(out) + "\n"


@dataclass
class Ran:
    block: Block
    code: str
    returncode: int
    output: str  # stdout and stderr together, cleaned

    @property
    def as_pasted(self) -> bool:
        return self.code == self.block.text


# a shell variable set on a line of its own (MODEL=$(python -c '...')): a reader pastes the blocks into one
# shell, so later blocks see it; each block here runs in its own bash, which gets these lines first
_ASSIGNMENT = re.compile(r"^(?:export\s+)?[A-Za-z_]\w*=(?:\$\(.*\)|'[^']*'|\"[^\"]*\"|[^\s;&|]+)\s*(?:#.*)?$")


def run_block(block: Block, code: str, workdir: Path, timeout: float, shell_vars: str = "") -> Ran:
    if block.lang == "bash":
        cmd = ["bash", "-eo", "pipefail", "-c", shell_vars + code]
    else:
        cmd = [sys.executable, "-c", code]
    try:
        proc = subprocess.run(
            cmd,
            cwd=workdir,
            env=environment(workdir),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        return Ran(block, code, -1, clean(_text(exc.stdout)) + f"\n[timed out after {timeout:.0f} s]")
    return Ran(block, code, proc.returncode, clean(_text(proc.stdout)))


def _text(output: bytes | str | None) -> str:
    """A block's output as text, its carriage returns kept: text mode would turn the "\r" before each
    progress frame into a line break, and :func:`clean` could no longer tell a redrawn line from a new one."""
    if isinstance(output, bytes):
        return output.decode("utf-8", errors="replace")
    return output or ""


_PROGRESS = re.compile(r"\d+%\|.*\|")
# the CLIs' progress line (wwtune.cli_common.Progress), printed only when a step takes over a second, so on a
# busy machine and not on a quiet one: "analyzing model … 3 s", "comparing a vs b … [####....] 8/39 layers
# (encoder.layer.1.x) 2 s"
_HEARTBEAT = re.compile(r" …(?: \[[#.]*\] \d+/\d+ layers(?: \(.*\))?)? \d+(?:\.\d+)? s$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # a terminal's "clear line" around a progress line
# a third-party library's own warning (e.g. lightning's deprecation notes), with a path of this machine
_LIBRARY_WARNING = re.compile(r"/site-packages/[^:]+:\d+: ")
_LOG_LINE = re.compile(r"^\[(?:[IWED] )?\d{4}-\d\d-\d\d[ T][\d:,.]+\]")


def clean(output: str) -> str:
    """Drop progress-bar frames, progress lines ("… N s"), timestamped log lines and other libraries'
    warnings; keep the rest as printed. The same input gives the same output however long each step took."""
    lines = []
    for line in output.replace("\r\n", "\n").split("\n"):  # a lone "\r" redraws its line: keep the last frame
        line = _ANSI.sub("", line.rsplit("\r", 1)[-1]).rstrip()
        if (
            _PROGRESS.search(line)
            or _LOG_LINE.match(line)
            or _HEARTBEAT.search(line)
            or _LIBRARY_WARNING.search(line)
        ):
            continue
        lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:  # the progress bar's last frame leaves an empty line
        lines.pop(0)
    return "\n".join(lines) + "\n"


def place_file(block: Block, workdir: Path) -> str | None:
    """Save a file block in ``workdir`` or compare it with the shipped file; the problem, or None."""
    import yaml

    assert block.path is not None
    shipped = ROOT / block.path
    if block.lang == "yaml" and block.path.startswith("conf/") and shipped.exists():
        if yaml.safe_load(block.text) != yaml.safe_load(shipped.read_text()):
            return f"line {block.line}: this block differs from the shipped {block.path}"
        return None
    target = workdir / block.path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(block.text)
    return None


def run_all(
    blocks: list[Block], workdir: Path, *, full: bool, timeout: float, name: str = "README.md"
) -> dict[int, Ran]:
    """Run the blocks in order in ``workdir``: as pasted, or reduced where the page says CI runs them reduced;
    with ``full=True`` the not-run blocks whose output the page shows run as pasted (full size)."""
    shown = {b.output_of for b in blocks if b.lang == "text" and b.output_of is not None}
    results: dict[int, Ran] = {}
    shell_vars = ""
    for k, block in enumerate(blocks):
        if block.path is not None:
            problem = place_file(block, workdir)
            if problem:
                results[k] = Ran(block, block.text, 1, problem)
            continue
        if block.lang not in RUNNABLE:
            continue
        if block.not_run is None:
            code = block.text
        elif full and k in shown:
            code = block.text
        elif block.ci_args:  # later blocks may need what it makes (a study): run it as CI does
            code = reduced(block)
        else:
            continue
        started = time.perf_counter()
        results[k] = run_block(block, code, workdir, timeout, shell_vars if block.lang == "bash" else "")
        if block.lang == "bash" and results[k].returncode == 0:
            shell_vars += "".join(f"{x}\n" for x in code.splitlines() if _ASSIGNMENT.match(x))
        took = time.perf_counter() - started
        print(
            f"{name} line {block.line}: exit {results[k].returncode} ({took:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
    return results


# ---------------------------------------------------------------------------------------------------------
# comparing shown outputs

_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
_VOLATILE = re.compile(r"\s?(?:s|ms|min)\b|\s?%|/s\b")  # a time, a share of time or a rate


def _split(line: str) -> tuple[list[str], list[tuple[float, bool]]]:
    words, numbers, at = [], [], 0
    for found in _NUMBER.finditer(line):
        words.append(" ".join(line[at : found.start()].split()))
        volatile = bool(_VOLATILE.match(line, found.end()))
        numbers.append((float(found.group()), volatile))
        at = found.end()
    words.append(" ".join(line[at:].split()))
    return words, numbers


def drift_close(shown: str, actual: str, rtol: float = 2e-3) -> list[str]:
    """Line by line: the same words, numbers within ``rtol`` (times and rates may differ freely); progress
    lines are dropped from both sides first."""
    a, b = clean(shown).rstrip("\n").splitlines(), clean(actual).rstrip("\n").splitlines()
    problems = []
    if len(a) != len(b):
        problems.append(f"{len(a)} lines shown, {len(b)} printed")
    for n, (x, y) in enumerate(zip(a, b, strict=False), 1):
        (wx, nx), (wy, ny) = _split(x), _split(y)
        if wx != wy or len(nx) != len(ny):
            problems.append(f"line {n}: shown {x.strip()!r}\n      printed {y.strip()!r}")
            continue
        for (u, volatile), (v, _) in zip(nx, ny, strict=True):
            if not volatile and abs(u - v) > rtol * max(abs(u), abs(v)) + 1e-12:
                problems.append(f"line {n}: {u:g} shown, {v:g} printed: {y.strip()!r}")
                break
    return problems


def key(line: str) -> str:
    """A line's key: its text before the first number (and up to its first colon)."""
    head = _NUMBER.split(line, 1)[0].rstrip(" #(")
    colon = head.find(":")
    return head[: colon + 1] if colon >= 0 else head


def drift(block: Block, ran: Ran) -> list[str]:
    """What differs between a text block and a fresh run of its command: as pasted, line by line with
    numbers close; reduced (fewer trials), the shown lines' keys in order."""
    return (drift_close if ran.as_pasted else drift_shape)(block.text, ran.output)


def drift_shape(shown: str, actual: str) -> list[str]:
    """Every shown line's key is printed, in the same order (a reduced run: other numbers, same lines), except
    indented lines without a label (``key: …``), whose presence depends on the trials; progress lines are
    dropped from both sides first."""
    printed = [key(x) for x in clean(actual).splitlines()]
    at, problems = 0, []
    for line in clean(shown).splitlines():
        k = key(line)
        if len(k.strip()) < 3:
            continue
        if line.startswith(" ") and ":" not in k:  # an indented unlabelled line (a ranked list's row, a
            continue  # verdict sentence): which rows and words appear depends on the trials
        try:
            at = printed.index(k, at) + 1
        except ValueError:
            problems.append(f"shown line not printed (key {k.strip()!r}): {line.strip()!r}")
    return problems


# ---------------------------------------------------------------------------------------------------------
# rewriting a page


def rewrite(text: str, blocks: list[Block], results: dict[int, Ran]) -> tuple[str, list[str]]:
    """A page's text with each text block replaced by its block's fresh output; and the blocks that failed."""
    lines = text.splitlines()
    failed = [
        f"line {r.block.line}: exit {r.returncode}\n{r.output[-2000:]}"
        for r in results.values()
        if r.returncode
    ]
    for block in sorted((b for b in blocks if b.lang == "text"), key=lambda b: -b.line):
        ran = results.get(block.output_of) if block.output_of is not None else None
        if ran is None or ran.returncode != 0:
            continue
        indent = re.match(r"^( *)", lines[block.line - 1]).group(1)
        new = [indent + x if x else x for x in ran.output.rstrip("\n").splitlines()]
        lines[block.line : block.end - 1] = new
    return "\n".join(lines) + "\n", failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", type=Path, help="pages to run (default: README.md and docs/*.md)")
    parser.add_argument("--check", action="store_true", help="report drift, change nothing")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per block (default 900)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folders")
    args = parser.parse_args(argv)
    status = 0
    for path in args.pages or pages():
        name = page_name(path)
        text = path.read_text()
        blocks = parse(text, name)
        if not any(b.lang in RUNNABLE or b.path for b in blocks):
            continue
        workdir = Path(tempfile.mkdtemp(prefix="wwtune_readme_"))
        results = run_all(blocks, workdir, full=True, timeout=args.timeout, name=name)
        new, failed = rewrite(text, blocks, results)
        for problem in failed:
            print(f"{name} {problem}", file=sys.stderr)
        if args.keep:
            print(f"{name}: scratch folder {workdir}", file=sys.stderr)
        if args.check:
            drifted = new != text and any(
                drift(b, results[b.output_of])
                for b in blocks
                if b.lang == "text" and results.get(b.output_of) and not results[b.output_of].returncode
            )
            print(f"{name} outputs: " + ("drift" if drifted else "up to date"), file=sys.stderr)
            status |= 1 if drifted or failed else 0
            continue
        path.write_text(new)
        print(f"{name} rewritten ({sum(b.lang == 'text' for b in blocks)} text blocks)", file=sys.stderr)
        status |= 1 if failed else 0
    return status


if __name__ == "__main__":
    sys.exit(main())
