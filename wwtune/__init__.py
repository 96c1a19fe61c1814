"""wwtune: data-free hyperparameter tuning scored by the heavy-tailed spectra of trained weights."""

from wwtune.compare import check_rules, compare, write_baseline
from wwtune.objective import NullReporter, Params, Pruned, Reporter, TrainingDiverged, task
from wwtune.spectral import COLUMNS, analyze, summary

__version__ = "0.1.0"

__all__ = [
    "COLUMNS",
    "NullReporter",
    "Params",
    "Pruned",
    "Reporter",
    "TrainingDiverged",
    "__version__",
    "analyze",
    "check_rules",
    "compare",
    "summary",
    "task",
    "write_baseline",
]
