"""One home for errors (docs/errors.md): every error wwtune raises on purpose is a WwtuneError, keeps its
built-in base, is listed in docs/errors.md; the merged names still work, with a DeprecationWarning."""

import ast
import importlib
import re
import warnings
from pathlib import Path

import optuna
import pytest
import torch

import wwtune
from wwtune import exceptions
from wwtune.exceptions import WwtuneError

ROOT = Path(__file__).resolve().parents[1]

#: what ``except <built-in>`` caught before exceptions.py, and must still catch
BUILT_IN_BASES = {
    "ConfigError": ValueError,
    "NoEligibleLayers": ValueError,
    "SearchSpaceError": ValueError,
    "StorageError": ValueError,
    "StorageConnectionError": RuntimeError,
    "WriteError": OSError,
    "JournalWriteError": OSError,
    "JournalCorrupt": ValueError,
    "SweeperMoved": ValueError,
}


ERROR_NAME = r"(Error|Exception|Pruned|Diverged|Failed|Corrupt|Moved)$"


def _exception_classes() -> dict[str, str]:
    """Every class in wwtune/ whose bases name an error (``...Error``, ``Exception``, ``Pruned``, ...)."""
    found = {}
    for path in sorted((ROOT / "wwtune").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b) for b in node.bases]
                if any(re.search(ERROR_NAME, b) for b in bases):
                    found[node.name] = str(path.relative_to(ROOT))
    return found


def test_every_error_class_derives_from_wwtune_error():
    classes = _exception_classes()
    assert "TrialTimeout" in classes  # the one deliberate BaseException (docs/errors.md says why)
    for name, where in classes.items():
        if name == "TrialTimeout":
            assert not issubclass(importlib.import_module("wwtune.deadline").TrialTimeout, Exception)
            continue
        module = importlib.import_module(where.removesuffix(".py").replace("/", "."))
        assert issubclass(getattr(module, name), WwtuneError), f"{where}: {name} is no WwtuneError"


@pytest.mark.parametrize("name, base", sorted(BUILT_IN_BASES.items(), key=lambda kv: kv[0]))
def test_each_error_keeps_its_built_in_base(name, base):
    cls = getattr(exceptions, name)
    assert issubclass(cls, WwtuneError) and issubclass(cls, base)


def test_write_error_is_still_an_oserror_with_its_errno():
    exc = exceptions.WriteError("could not write x", 28)
    assert isinstance(exc, OSError) and exc.errno == 28 and str(exc) == "could not write x"


def test_docs_errors_lists_every_catchable_error():
    page = (ROOT / "docs" / "errors.md").read_text()
    for name in _exception_classes():
        if name != "TrialTimeout":
            assert f"| `{name}`" in page, f"docs/errors.md does not list {name}"


def test_the_merged_pairs():
    # a diverged run is a failed trial: catch=(wwtune.TrialFailed,) keeps catching what Diverged was
    assert issubclass(wwtune.TrainingDiverged, wwtune.TrialFailed)
    exc = wwtune.TrainingDiverged("training loss became nan at step 3")
    assert exc.reason == "diverged: training loss became nan at step 3" and not exc.recorded
    # the bridge's prune signal is the task contract's Pruned and Optuna's TrialPruned at once
    assert issubclass(wwtune.TrialPruned, wwtune.Pruned)
    assert issubclass(wwtune.TrialPruned, optuna.TrialPruned)
    assert wwtune.Pruned is exceptions.Pruned and wwtune.objective.Pruned is exceptions.Pruned


def test_old_names_warn_and_still_work():
    import wwtune.bridge
    import wwtune.score
    import wwtune.study

    with pytest.warns(DeprecationWarning, match=r"wwtune\.exceptions\.TrainingDiverged"):
        assert wwtune.bridge.Diverged is wwtune.TrainingDiverged
    with pytest.warns(DeprecationWarning, match=r"wwtune\.ranking\.pareto_pick"):
        from wwtune.score import pareto_pick
    assert pareto_pick([1.0, 2.0], [2.0, 1.0]) in (0, 1)
    with pytest.warns(DeprecationWarning, match=r"wwtune\.ranking\.best_trial"):
        from wwtune.study import best_trial
    assert best_trial([]) is None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = wwtune.study.nope


def test_current_names_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from wwtune.ranking import best_trial, pareto_pick  # noqa: F401
        from wwtune.study import run_study  # noqa: F401

        _ = wwtune.TrainingDiverged, wwtune.TrialFailed, wwtune.WwtuneError


def test_the_bridge_raises_one_diverged_error_caught_as_a_failed_trial(tmp_path):
    """A NaN loss in a user's own loop: TrainingDiverged (recorded), which catch=(TrialFailed,) catches."""
    study = optuna.create_study()
    model = torch.nn.Sequential(torch.nn.Linear(60, 30))

    def objective(trial):
        bridge = wwtune.TrialBridge(trial, budget=2)
        bridge.report(1, model, float("nan"))
        return 0.0

    study.optimize(objective, n_trials=1, catch=(wwtune.TrialFailed,))
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs["wwtune.fail_reason"].startswith("diverged: training loss became nan")

    caught = []

    def objective2(trial):
        bridge = wwtune.TrialBridge(trial, budget=2)
        try:
            bridge.report(1, model, float("inf"))
        except wwtune.TrainingDiverged as exc:
            caught.append(exc)
            raise

    study.optimize(objective2, n_trials=1, catch=(wwtune.TrialFailed,))
    assert caught and caught[0].recorded and str(caught[0]) == caught[0].reason


def test_the_top_level_is_the_analysis_the_bridge_the_score_and_the_pruner():
    assert set(wwtune.__all__) == {
        "COLUMNS",
        "AlphaPruner",
        "AnalysisOptions",
        "EarlyFreezing",  # the in-training helpers (issue 22)
        "NoEligibleLayers",
        "NullReporter",
        "Params",
        "Pruned",
        "Reporter",
        "Score",
        "TempBalance",
        "TrainingDiverged",
        "TrialBridge",
        "TrialFailed",
        "TrialPruned",
        "WeightWatcherOptionError",  # issue 23: a WeightWatcher argument wwtune refuses
        "WwtuneError",
        "__version__",
        "analyze",
        "compare",
        "describe",  # issue 23: WeightWatcher's describe()
        "load_study",
        "score_model",
        "summary",
        "task",
    }
    # the helpers stay reachable under their modules (and here, for code written before)
    from wwtune.compare import check_rules, write_baseline
    from wwtune.outcome import store_trust
    from wwtune.report import write_report
    from wwtune.trust import format_trust

    assert wwtune.check_rules is check_rules and wwtune.write_baseline is write_baseline
    assert wwtune.store_trust is store_trust and wwtune.format_trust is format_trust
    assert wwtune.write_report is write_report
