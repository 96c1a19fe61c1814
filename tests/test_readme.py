"""README.md and every guide page docs/*.md are tested: their blocks follow the conventions of
docs/readme_outputs.py, every bash and python block runs as pasted (or reduced, where the page says CI runs it
reduced), config blocks match the files they name, and each shown output still matches what the current code
prints. A new page under docs/ is picked up by its name alone."""

from __future__ import annotations

import importlib.util
import io
import re
import sys
import threading
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("readme_outputs", ROOT / "docs" / "readme_outputs.py")
readme = importlib.util.module_from_spec(_spec)
sys.modules["readme_outputs"] = readme
_spec.loader.exec_module(readme)


def parse(text: str, name: str = "README.md"):
    return readme.parse(text, name)


# ------------------------------------------------------------------------------------ the conventions


def test_a_not_run_marker_needs_a_reason():
    with pytest.raises(readme.ReadmeError, match="line 1: marker .* with a reason"):
        parse("<!-- readme: not run -->\n```bash\nls\n```\n")
    with pytest.raises(readme.ReadmeError, match="with a reason"):
        parse("<!-- readme: not run —  -->\n```bash\nls\n```\n")
    (block,) = parse("<!-- readme: not run — needs a server -->\n```bash\nls\n```\n")
    assert block.not_run == "needs a server" and not block.runs_as_pasted


def test_a_marker_must_sit_right_before_its_block():
    with pytest.raises(readme.ReadmeError, match="right before a code block"):
        parse("<!-- readme: not run — a server -->\n\n```bash\nls\n```\n")


def test_unlabelled_and_indented_code_blocks_are_refused():
    with pytest.raises(readme.ReadmeError, match=r"language '\(none\)'"):
        parse("Run:\n\n```\nmake test\n```\n")
    with pytest.raises(readme.ReadmeError, match="indented code block"):
        parse("Run:\n\n    make test\n")
    with pytest.raises(readme.ReadmeError, match="language 'console'"):
        parse("```console\n$ ls\n```\n")
    # a numbered list's continuation lines are not code
    parse("1. Install:\n\n   ```bash\n   ls\n   ```\n   then\n\n2. more\n")


def test_config_blocks_name_their_file_and_outputs_follow_their_block():
    blocks = parse(
        "```yaml\n# @package _global_\n# conf/study/mine.yaml\nstudy: {name: mine}\n```\n"
        "```python\n# task.py\nx = 1\n```\n"
        "```bash\nwwtune --version\n```\n\nprose\n\n```text\nwwtune 0.1.0\n```\n"
        "```text\nnot an output of anything\n```\n"
    )
    assert [b.path for b in blocks[:2]] == ["conf/study/mine.yaml", "task.py"]
    assert blocks[3].output_of == 2 and blocks[4].output_of is None
    with pytest.raises(readme.ReadmeError, match="a yaml block names the file"):
        parse("```yaml\nstudy: {name: mine}\n```\n")


def test_a_ci_clause_reduces_every_wwtune_command_of_the_block():
    (block,) = parse(
        "<!-- readme: not run — slow; CI runs it with `study.n_trials=2 objective.budget=1` -->\n"
        "```bash\nW=0 python -m wwtune -m study=q study.n_trials=40 > log 2>&1 &\n"
        "wwtune --cfg job\necho done\n```\n"
    )
    assert block.ci_args == ["study.n_trials=2", "objective.budget=1"]
    assert readme.reduced(block) == (
        "W=0 python -m wwtune -m objective.budget=1 study=q study.n_trials=2 > log 2>&1 &\n"
        "wwtune study.n_trials=2 objective.budget=1 --cfg job\necho done\n"
    )


def test_drift_checks_catch_a_changed_number_but_not_a_time():
    shown = "fc1   64   yes   1.994\n7 layers analyzed in 1.0 s\n"
    assert readme.drift_close(shown, "fc1   64   yes   1.994\n7 layers analyzed in 3.7 s\n") == []
    assert readme.drift_close(shown, "fc1   64   yes   2.100\n7 layers analyzed in 1.0 s\n")
    assert readme.drift_close(shown, "fc1   64   no    1.994\n7 layers analyzed in 1.0 s\n")
    assert readme.drift_close(shown, "fc1   64   yes   1.994\n")
    summary = "Study 'q': 40 trials — 40 complete\nBest trial #15: score 0.01\nTime: training 21.8 s\n"
    assert (
        readme.drift_shape(summary, "Study 'q': 6 trials — 6 complete\nBest trial #3: score 0.2\nTime: 1 s\n")
        == []
    )
    assert readme.drift_shape(summary, "Study 'q': 6 trials — 6 complete\nTime: training 1 s\n")
    # a reduced run ranks other selectors first and words its verdict otherwise: indented unlabelled lines
    ranked = (
        "Study 'q': 40 trials\n  pick=default  #16 regret 0.002\n  On this task the α score added nothing\n"
    )
    assert readme.drift_shape(ranked, "Study 'q': 6 trials\n  On this task the α score did worse\n") == []
    assert readme.drift_shape(
        "  trials compared: 40\n", "  compared 6\n"
    )  # a labelled line is still required


def test_shell_variables_carry_over_to_later_blocks(tmp_path):
    blocks = parse(
        '```bash\nX=$(echo 4 | tr 4 5)\nexport Y=y\n```\n```bash\necho "$X$Y"\n```\n```text\n5y\n```\n'
    )
    results = readme.run_all(blocks, tmp_path, full=False, timeout=30)
    assert results[1].output == "5y\n" and results[1].as_pasted


def test_a_progress_frame_between_two_lines_adds_no_line(tmp_path):
    """The block's output keeps its carriage returns: read in text mode, the "\r" before a progress frame
    became a line break, and the frame, once dropped, left an empty line the page does not show."""
    blocks = parse("```bash\nprintf 'a\\n\\rcomparing x vs y … 1 s\\nb\\n'\n```\n```text\na\nb\n```\n")
    assert readme.run_all(blocks, tmp_path, full=False, timeout=30)[0].output == "a\nb\n"


def test_a_page_that_breaks_a_convention_is_named_with_its_line():
    with pytest.raises(readme.ReadmeError, match=r"docs/new\.md line 3: code block language '\(none\)'"):
        readme.parse("# A page\n\n```\nls\n```\n", "docs/new.md")


def test_every_page_under_docs_is_picked_up(tmp_path):
    (tmp_path / "docs").mkdir()
    for name in ("README.md", "docs/zeta.md", "docs/alpha.md", "docs/notes.txt"):
        (tmp_path / name).write_text("# x\n")
    found = [readme.page_name(p, tmp_path) for p in readme.pages(tmp_path)]
    assert found == ["README.md", "docs/alpha.md", "docs/zeta.md"]
    assert {"README.md", "docs/analyze.md", "docs/tune.md"} <= set(map(readme.page_name, readme.pages()))


def test_the_cleaner_drops_progress_bars_and_log_lines():
    raw = "[2026-12-02 01:09:13,814][wwtune.study][INFO] - Study\n 40%|████ | 2/5 [00:04<00:05]\rdone\nkept\n"
    assert readme.clean(raw) == "done\nkept\n"
    assert readme.clean("analyzing /x/model … 1 s\nlayer  alpha\n") == "layer  alpha\n"


SHOWN_COMPARE = """layer  α base  α new  verdict
fc1     4.363  4.160  spectrum changed
2 layers compared in 0.9 s: 1 unchanged
exit status: 1
"""


def _printed_with_progress(line_every: float) -> str:
    """What `wwtune compare` prints on a machine where the comparison took longer than the progress line's
    delay: the real progress line (wwtune.cli_common.Progress, its delay set to 0), then the same output."""
    from wwtune.cli_common import Progress

    class Stream(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.wrote = threading.Event()

        def write(self, text: str) -> int:
            n = super().write(text)
            if "12/39 layers" in self.getvalue():
                self.wrote.set()
            return n

    err = Stream()
    progress = Progress(
        "base.safetensors vs new.safetensors",
        err,
        enabled=True,
        delay=0.0,
        line_every=line_every,
        verb="comparing",
    )
    with progress:
        progress.update(12, 39, "encoder.layer.1.attention.self.key")  # 12 of 39 layers done when it shows
        assert err.wrote.wait(30), "the progress line never came"
    assert "12/39 layers" in err.getvalue()
    assert "comparing base.safetensors vs new.safetensors …" in err.getvalue()
    table, rest = SHOWN_COMPARE.split("2 layers", 1)
    return table + err.getvalue() + "2 layers" + rest.replace("0.9 s", "3.2 s")


def test_a_progress_line_on_a_busy_machine_is_not_drift():
    """Issue 24: the progress line appears only when a step takes over a second, so on a busy machine the
    printed output had a line the shown output lacked. The check drops it from both sides."""
    printed = _printed_with_progress(line_every=0.05)
    assert readme.clean(printed) == readme.clean(SHOWN_COMPARE).replace("0.9 s", "3.2 s")
    assert readme.drift_close(SHOWN_COMPARE, printed) == []
    assert readme.drift_shape(SHOWN_COMPARE, printed) == []
    # a terminal's carriage-return frames and "clear line" codes too
    tty = SHOWN_COMPARE.replace(
        "2 layers", "\r\x1b[Kcomparing a vs b … [####................] 8/39 layers 2 s\r\x1b[K2 layers"
    )
    assert readme.drift_close(SHOWN_COMPARE, tty) == []
    # and a real change is still drift
    assert readme.drift_close(SHOWN_COMPARE, printed.replace("4.160", "4.9"))


# ------------------------------------------------------------------------------------ the pages themselves

PAGES = readme.pages()
PAGE_IDS = [readme.page_name(p) for p in PAGES]


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_page_follows_the_conventions(page):
    name = readme.page_name(page)
    blocks = readme.parse(page.read_text(), name)
    for block in blocks:  # an output nobody produces would silently go stale
        if block.lang == "text":
            assert block.output_of is not None, f"{name} line {block.line}: a text block without its command"


def test_the_readme_is_a_front_page():
    text = readme.README.read_text()
    lines = text.splitlines()
    assert len(lines) <= 450, f"README.md has {len(lines)} lines; the guide belongs in docs/"
    first = next(n for n, line in enumerate(lines, 1) if line.startswith("```bash"))
    assert first <= 22, f"the first command is on line {first}"
    assert any(b.runs_as_pasted for b in parse(text))
    for link in re.findall(r"\]\((docs/[^)#]+)", text):  # every guide page it links exists
        assert (readme.ROOT / link).exists(), link


def test_the_config_group_table_names_the_shipped_defaults():
    """docs/tune.md's config-group table says which choice is the default: the one conf/config.yaml sets."""
    shipped = {}
    for entry in yaml.safe_load((readme.ROOT / "conf" / "config.yaml").read_text())["defaults"]:
        if isinstance(entry, dict):
            shipped.update(entry)
    text = (readme.DOCS / "tune.md").read_text()
    said = dict(re.findall(r"^\| `(\w+)` \| [^|]*?`(\w+)` \(default\)", text, flags=re.M))
    assert said, "no '(default)' in docs/tune.md's config-group table"
    for group, choice in said.items():
        assert shipped.get(group) == choice, (
            f"docs/tune.md says {group}={choice} is the default, conf says {shipped.get(group)}"
        )
    assert {"score", "sampler", "pick"} <= set(said)


def test_the_guide_task_is_the_tested_example():
    blocks = parse((readme.DOCS / "tune.md").read_text(), "docs/tune.md")
    (task,) = [b for b in blocks if b.path == "user_task_example.py"]
    code = task.text.split("\n", 1)[1]  # without its "# user_task_example.py" line
    assert code in (ROOT / "tests" / "user_task_example.py").read_text()


# files each page's runs must leave in its scratch folder (the outputs the page says they write)
DOCUMENTED_OUTPUTS = {
    "README.md": ["studies/quickstart/report.html", "studies/quickstart/best_params.yaml"],
    "docs/analyze.md": ["minilm.csv", "plots/layer_alphas.png"],
    "docs/compare.md": ["compressed.safetensors", "report.json", "baseline.csv"],
    "docs/tune.md": ["studies/quickstart/report.html", "studies/example/best_params.yaml"],
}


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_block_runs_and_its_outputs_have_not_drifted(page, tmp_path):
    name = readme.page_name(page)
    blocks = readme.parse(page.read_text(), name)
    if not any(b.lang in readme.RUNNABLE or b.path for b in blocks):
        pytest.skip(f"{name} has no block to run")
    results = readme.run_all(blocks, tmp_path, full=False, timeout=400, name=name)
    failed = [
        f"{name} line {r.block.line} (exit {r.returncode}):\n{r.code}\n--- output ---\n{r.output[-3000:]}"
        for r in results.values()
        if r.returncode != 0
    ]
    assert not failed, "\n\n".join(failed)
    drift = []
    for block in blocks:
        ran = results.get(block.output_of) if block.lang == "text" else None
        if ran is None:
            continue
        problems = readme.drift(block, ran)
        if problems:
            how = "as pasted" if ran.as_pasted else "reduced"
            drift.append(
                f"{name} line {block.line} (output of line {ran.block.line}, run {how}):\n  "
                + "\n  ".join(problems)
            )
    assert not drift, (
        "\n\n".join(drift) + f"\n\nRegenerate with: .venv/bin/python docs/readme_outputs.py {name}"
    )
    for path in DOCUMENTED_OUTPUTS.get(name, []):
        assert (tmp_path / path).exists(), f"{name}: {path} was not written"
