"""README.md is tested: its blocks follow the conventions of docs/readme_outputs.py, every bash and python
block runs as pasted (or reduced, where the README says CI runs it reduced), config blocks match the files
they name, and each shown output still matches what the current code prints."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("readme_outputs", ROOT / "docs" / "readme_outputs.py")
readme = importlib.util.module_from_spec(_spec)
sys.modules["readme_outputs"] = readme
_spec.loader.exec_module(readme)


def parse(text: str):
    return readme.parse(text)


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


def test_shell_variables_carry_over_to_later_blocks(tmp_path):
    blocks = parse(
        '```bash\nX=$(echo 4 | tr 4 5)\nexport Y=y\n```\n```bash\necho "$X$Y"\n```\n```text\n5y\n```\n'
    )
    results = readme.run_all(blocks, tmp_path, full=False, timeout=30)
    assert results[1].output == "5y\n" and results[1].as_pasted


def test_the_cleaner_drops_progress_bars_and_log_lines():
    raw = "[2026-12-02 01:09:13,814][wwtune.study][INFO] - Study\n 40%|████ | 2/5 [00:04<00:05]\rdone\nkept\n"
    assert readme.clean(raw) == "done\nkept\n"
    assert readme.clean("analyzing /x/model … 1 s\nlayer  alpha\n") == "layer  alpha\n"


# ------------------------------------------------------------------------------------ the README itself


def test_the_readme_follows_the_conventions():
    blocks = parse(readme.README.read_text())
    assert any(b.runs_as_pasted for b in blocks)
    for block in blocks:  # an output nobody produces would silently go stale
        if block.lang == "text":
            assert block.output_of is not None, f"README line {block.line}: a text block without its command"


def test_the_readme_task_is_the_tested_example():
    blocks = parse(readme.README.read_text())
    (task,) = [b for b in blocks if b.path == "user_task_example.py"]
    code = task.text.split("\n", 1)[1]  # without its "# user_task_example.py" line
    assert code in (ROOT / "tests" / "user_task_example.py").read_text()


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_every_readme_block_runs_and_its_outputs_have_not_drifted(tmp_path):
    text = readme.README.read_text()
    blocks = parse(text)
    results = readme.run_all(blocks, tmp_path, full=False, timeout=400)
    failed = [
        f"README line {r.block.line} (exit {r.returncode}):\n{r.code}\n--- output ---\n{r.output[-3000:]}"
        for r in results.values()
        if r.returncode != 0
    ]
    assert not failed, "\n\n".join(failed)
    drift = []
    for block in blocks:
        ran = results.get(block.output_of) if block.lang == "text" else None
        if ran is None:
            continue
        as_pasted = ran.as_pasted
        problems = (readme.drift_close if as_pasted else readme.drift_shape)(block.text, ran.output)
        if problems:
            how = "as pasted" if as_pasted else "reduced"
            drift.append(
                f"README line {block.line} (output of line {ran.block.line}, run {how}):\n  "
                + "\n  ".join(problems)
            )
    assert not drift, "\n\n".join(drift) + "\n\nRegenerate with: .venv/bin/python docs/readme_outputs.py"
    # the documented outputs of the runs exist
    for path in ("studies/quickstart/report.html", "studies/quickstart/best_params.yaml", "minilm.csv"):
        assert (tmp_path / path).exists(), path
    assert list((tmp_path / "plots").glob("layer_alphas.png"))
