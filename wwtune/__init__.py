"""wwtune: data-free hyperparameter tuning scored by the heavy-tailed spectra of trained weights."""

import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from wwtune.compare import check_rules as check_rules
from wwtune.compare import compare
from wwtune.compare import write_baseline as write_baseline
from wwtune.exceptions import NoEligibleLayers, Pruned, TrainingDiverged, TrialFailed, WwtuneError
from wwtune.execution import analyze as run_analysis
from wwtune.objective import NullReporter, Params, Reporter, task
from wwtune.spectral import COLUMNS, AnalysisOptions, WeightWatcherOptionError, describe, summary
from wwtune.training import EarlyFreezing, TempBalance
from wwtune.version import __version__

#: WeightWatcher's default folder for ``savefig``.
DEFAULT_PLOT_DIR = "ww-img"


def analyze(
    source: Any,
    options: AnalysisOptions | None = None,
    /,
    *,
    plot: bool = False,
    savefig: str | os.PathLike[str] | bool | None = None,
    workers: int | str | None = None,
    cluster: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    **changes: Any,
) -> pd.DataFrame:
    """Spectral diagnostics of every weight matrix of a model, one row per layer; optionally its plots.

    Args:
        source: an ``nn.Module``, a state_dict, a ``.pt``/``.pth``/``.bin``/``.safetensors`` file or a
            Hugging Face model folder.
        options: an :class:`AnalysisOptions` (default: all defaults).
        plot: write the plots of :func:`wwtune.report.save_model_plots` (α per layer, each layer's ESD)
            into ``savefig`` (default folder ``ww-img``, as WeightWatcher's); the paths are in
            ``df.attrs["plots"]``. Default False.
        savefig: folder for the plots; giving one implies ``plot=True`` (``True``: ``ww-img``).
        workers, cluster, progress: the layers over N worker processes of this machine (``"auto"``: from
            cores and memory) or a Dask cluster (``"tcp://host:8786"``), same DataFrame; see
            :func:`wwtune.execution.analyze` and docs/distributed-analysis.md.
        **changes: analysis options by name over ``options`` (``layers=``, ``min_evals=``, ``fit=``, ...:
            the fields of :class:`AnalysisOptions`, documented in :func:`wwtune.spectral.analyze`).

    Returns:
        A DataFrame with the columns documented in :data:`wwtune.spectral.columns.COLUMNS`.
    """
    if not isinstance(plot, bool):
        raise TypeError(f"plot must be True or False but got {plot!r}.")
    opts = AnalysisOptions.of(options, **changes)
    folder = _plot_dir(plot, savefig)
    where = {"workers": workers, "cluster": cluster, "progress": progress}
    if folder is None:
        return run_analysis(source, opts, **where)
    df = run_analysis(source, dataclasses.replace(opts, keep_evals=True), **where)  # the ESD plots need them
    from wwtune.report import save_model_plots  # lazy: matplotlib only when plots are asked for

    paths = save_model_plots(df, folder, min_evals=opts.min_evals)
    logging.getLogger(__name__).info("analyze: %d plots written to %s", len(paths), folder)
    if not opts.keep_evals:
        df = df.drop(columns=["evals"])
    df.attrs["plots"] = [str(p) for p in paths]
    return df


def _plot_dir(plot: bool, savefig: Any) -> Path | None:
    """Where ``plot=True`` / ``savefig=`` write the figures, or None for no plots."""
    if savefig is None or savefig is False:
        return Path(DEFAULT_PLOT_DIR) if plot else None
    if savefig is True:
        return Path(DEFAULT_PLOT_DIR)
    if not isinstance(savefig, (str, os.PathLike)) or not str(savefig):
        raise TypeError(f"savefig must be a folder path or True but got {savefig!r}.")
    return Path(savefig)


def load_study(study_name: str, storage: object = "studies/{study_name}/journal.log"):  # -> optuna.Study
    """Open a stored study: ``storage`` is a journal file path (default: the study's own), a folder holding
    ``journal.log``, a database URL or an Optuna storage object (see :func:`wwtune.storage.as_storage`)."""
    import optuna  # lazy: `import wwtune` stays light (no Optuna, no SQLAlchemy)

    from wwtune.storage import as_storage  # lazy, as above

    if isinstance(storage, str):
        storage = storage.format(study_name=study_name)
    return optuna.load_study(study_name=study_name, storage=as_storage(storage))  # type: ignore[arg-type]


# The bridge to a user's own training loop (plain Optuna, Lightning, Hugging Face): imported on first use,
# so `import wwtune` stays free of Optuna's start-up cost (and of lightning / transformers, always).
_LAZY = {
    "AlphaPruner": "wwtune.pruners",
    "Score": "wwtune.score",
    "TrialBridge": "wwtune.bridge",
    "TrialPruned": "wwtune.bridge",
    "format_trust": "wwtune.trust",
    "score_model": "wwtune.bridge",
    "store_trust": "wwtune.outcome",
    "trials_dataframe": "wwtune.trials_table",
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


#: the public face: the analysis, the task contract, the bridge, the score, the pruner and the errors.
#: ``check_rules``, ``write_baseline`` (wwtune.compare), ``format_trust`` (wwtune.trust), ``store_trust``
#: (wwtune.outcome), ``write_report`` (wwtune.report) and ``trials_dataframe`` (wwtune.trials_table) are
#: reachable here but live in their modules.
__all__ = [
    "COLUMNS",
    "AlphaPruner",
    "AnalysisOptions",
    "EarlyFreezing",
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
    "WeightWatcherOptionError",
    "WwtuneError",
    "__version__",
    "analyze",
    "compare",
    "describe",
    "load_study",
    "score_model",
    "summary",
    "task",
]
