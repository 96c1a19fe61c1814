"""The trust report at the end of a study: stored as ``wwtune.trust`` and printed by the CLI."""

import os
import subprocess
import sys
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import TrialState
from scipy import stats

optuna.logging.set_verbosity(optuna.logging.WARNING)

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}


def wwtune(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wwtune", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300
    )


def load(folder: Path, name: str) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(folder / "studies" / name / "journal.log")))
    return optuna.load_study(study_name=name, storage=storage)


def test_cli_prints_and_stores_the_trust_report(project):
    run = wwtune("study=tiny", "study.n_trials=12", "sampler=random", cwd=project)
    assert run.returncode == 0, run.stderr[-3000:]
    study = load(project, "tiny")
    trust = study.user_attrs.get("wwtune.trust")
    assert trust is not None, study.user_attrs.keys()

    # recomputed independently from the stored trials: oriented so that +1 = lower α score, higher held-out
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) >= 10
    scores = [t.user_attrs["wwtune.score"] for t in done]
    heldout = [t.user_attrs["wwtune.heldout"] for t in done]
    assert trust["n"] == len(done)
    assert trust["heldout_direction"] == "maximize"
    rho = stats.spearmanr([-s for s in scores], heldout).statistic
    assert abs(trust["spearman"] - rho) < 1e-9
    best = max(range(len(done)), key=lambda i: (heldout[i], -done[i].number))
    assert trust["heldout_best"]["trial"] == done[best].number
    alpha_pick = min(range(len(done)), key=lambda i: (scores[i], done[i].number))
    assert abs(trust["regret"] - (heldout[best] - heldout[alpha_pick])) < 1e-12
    assert trust["verdict"] in ("well", "poorly", "inconclusive")

    # printed in the CLI summary, with the same numbers
    out = run.stdout
    assert "Trust in the α score: " + trust["summary"] in out
    assert f"Spearman {trust['spearman']:.4g}" in out
    assert f"#{trust['alpha_best']['trial']}: held-out {trust['alpha_best']['heldout']:.4g}" in out


def test_no_trust_report_without_a_heldout_metric(project):
    run = wwtune("study=tiny", "study.n_trials=3", "objective.heldout=null", cwd=project)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "wwtune.trust" not in load(project, "tiny").user_attrs
    assert "Trust in the α score" not in run.stdout
