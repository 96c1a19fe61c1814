"""wwtune: data-free hyperparameter tuning scored by the heavy-tailed spectra of trained weights."""

from typing import Any

from wwtune.objective import NullReporter, Params, Pruned, Reporter, TrainingDiverged, task
from wwtune.spectral import COLUMNS, analyze, summary

__version__ = "0.1.0"

# The bridge to a user's own training loop (plain Optuna, Lightning, Hugging Face): imported on first use,
# so `import wwtune` stays free of Optuna's start-up cost (and of lightning / transformers, always).
_LAZY = {
    "AlphaPruner": "wwtune.pruners",
    "NoEligibleLayers": "wwtune.bridge",
    "Score": "wwtune.score",
    "TrialBridge": "wwtune.bridge",
    "TrialFailed": "wwtune.bridge",
    "TrialPruned": "wwtune.bridge",
    "format_trust": "wwtune.trust",
    "score_model": "wwtune.bridge",
    "store_trust": "wwtune.outcome",
    "write_report": "wwtune.report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        # lazy: the bridge names load Optuna on first use, not on `import wwtune`
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'wwtune' has no attribute {name!r}")


__all__ = [
    "COLUMNS",
    "AlphaPruner",
    "NoEligibleLayers",
    "NullReporter",
    "Params",
    "Pruned",
    "Reporter",
    "Score",
    "TrainingDiverged",
    "TrialBridge",
    "TrialFailed",
    "TrialPruned",
    "__version__",
    "analyze",
    "format_trust",
    "score_model",
    "store_trust",
    "summary",
    "task",
    "write_report",
]
