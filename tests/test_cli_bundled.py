"""Each bundled task's study config runs end to end through the CLI (subprocess), with a tiny budget."""

import os
import subprocess
import sys

import optuna
import pytest
import yaml
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "study,band",
    [
        ("quickstart", [2.0, 2.0]),
        ("digits_mlp", [2.0, 2.0]),
        ("digits_cnn", [2.0, 2.0]),
        ("char_lm", [3.0, 4.0]),
        ("teacher_student", [2.0, 2.0]),
        # over-fitting scenarios and AdamW (tests/test_scenarios.py checks what makes them scenarios)
        ("digits_noisy", [2.0, 2.0]),
        ("teacher_student_noisy", [2.0, 2.0]),
        ("char_lm_small", [3.0, 4.0]),
        ("digits_mlp_adamw", [2.0, 2.0]),
    ],
)
def test_bundled_study_runs_through_the_cli(tmp_path, study, band):
    overrides = [
        f"study={study}",
        "study.n_trials=2",
        "objective.budget=2",
        "objective.report_every=1",
        "study.progress_bar=false",
        "sanity.min_loss_drop=null",
    ]
    if study.startswith("char_lm"):
        overrides.append("objective.fixed.steps_per_epoch=5")
    run = subprocess.run(
        [sys.executable, "-m", "wwtune", *overrides],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"Study '{study}': 2 trials" in run.stdout
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "studies" / study / "journal.log")))
    s = optuna.load_study(study_name=study, storage=storage)
    assert s.user_attrs["wwtune.band"] == band
    # with a 2-epoch budget the shipped alpha pruner (digits_cnn, char_lm) may rightly cut under-trained runs
    for t in s.trials:
        assert t.state in (TrialState.COMPLETE, TrialState.PRUNED), t.user_attrs.get("wwtune.fail_reason")
        layers = t.user_attrs["wwtune.layers"]
        assert any(layers["eligible"])
        if t.state == TrialState.PRUNED:
            assert t.user_attrs["wwtune.prune_reason"]["message"]
        else:
            assert layers["step"] == 2 and t.user_attrs["wwtune.heldout"] is not None
    best_file = tmp_path / "studies" / study / "best_params.yaml"
    if any(t.state == TrialState.COMPLETE for t in s.trials):
        best = yaml.safe_load(best_file.read_text())
        assert best["study"] == study and best["params"]
    else:
        assert "No complete, feasible trial" in run.stdout and not best_file.exists()
