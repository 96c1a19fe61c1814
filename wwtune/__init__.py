"""wwtune: data-free hyperparameter tuning scored by the heavy-tailed spectra of trained weights."""

from wwtune.objective import NullReporter, Params, Pruned, Reporter, TrainingDiverged, task

__version__ = "0.1.0"

__all__ = ["NullReporter", "Params", "Pruned", "Reporter", "TrainingDiverged", "task", "__version__"]
