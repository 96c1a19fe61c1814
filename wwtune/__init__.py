"""wwtune: data-free hyperparameter tuning scored by the heavy-tailed spectra of trained weights."""

from wwtune.compare import check_rules, compare, write_baseline
from wwtune.objective import NullReporter, Params, Pruned, Reporter, TrainingDiverged, task
from wwtune.spectral import COLUMNS, analyze, summary

__version__ = "0.1.0"


def load_study(study_name: str, storage: object = "studies/{study_name}/journal.log"):  # -> optuna.Study
    """Open a stored study: ``storage`` is a journal file path (default: the study's own), a folder holding
    ``journal.log``, a database URL or an Optuna storage object (see :func:`wwtune.storage.as_storage`)."""
    import optuna  # lazy: `import wwtune` stays light (no Optuna, no SQLAlchemy)

    from wwtune.storage import as_storage  # lazy, as above

    if isinstance(storage, str):
        storage = storage.format(study_name=study_name)
    return optuna.load_study(study_name=study_name, storage=as_storage(storage))  # type: ignore[arg-type]

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
    "load_study",
    "summary",
    "task",
    "write_baseline",
]
