"""Attach figures to Optuna trials or studies as artifacts, so ``optuna-dashboard`` shows them."""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import optuna
from matplotlib.figure import Figure
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, Trial

from wwtune.report.plots import plot_layer_alphas, save_figure

__all__ = ["attach_figures", "attach_layer_figure"]

logger = logging.getLogger(__name__)
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def attach_figures(
    study_or_trial: Trial | FrozenTrial | optuna.Study,
    figures: Mapping[str, Figure],
    artifact_store: object,
    *,
    formats: Sequence[str] = ("png",),
    storage: BaseStorage | None = None,
) -> dict[str, str]:
    """Upload each figure as an Optuna artifact of a trial (or of the study); returns ``{file name: id}``.

    Args:
        study_or_trial: a running ``optuna.Trial`` (e.g. inside the objective, before the trial
            finishes: Optuna refuses to change a finished trial), a ``FrozenTrial`` of a running trial
            together with ``storage``, or an ``optuna.Study`` (study-level artifacts, any time).
        figures: ``{name: Figure}``, e.g. ``{"layer_alphas": plot_layer_alphas(df, band)}``; the name
            becomes the file name (``layer_alphas.png``), unsafe characters replaced by ``_``.
        artifact_store: an Optuna artifact store, e.g.
            ``optuna.artifacts.FileSystemArtifactStore("studies/<name>/artifacts")``.
        formats: file formats per figure, ``"png"`` (default) and/or ``"svg"``.
        storage: the study's storage; needed only for a ``FrozenTrial``.

    Example::

        import os

        import optuna
        from optuna.artifacts import FileSystemArtifactStore
        from wwtune.report import attach_figures, plot_layer_alphas

        os.makedirs("artifacts", exist_ok=True)
        store = FileSystemArtifactStore("artifacts")
        study = optuna.create_study()
        trial = study.ask()
        fig = plot_layer_alphas({"name": ["fc1", "fc2"], "alpha": [2.1, 3.4]}, band=(2, 2))
        attach_figures(trial, {"layer_alphas": fig}, store)
        study.tell(trial, 0.5)

    Open them with ``optuna-dashboard <storage> --artifact-dir artifacts``.
    """
    if not isinstance(study_or_trial, (Trial, FrozenTrial, optuna.Study)):
        raise TypeError(
            "study_or_trial must be an optuna.Trial, FrozenTrial or Study but got "
            f"{type(study_or_trial).__name__}."
        )
    if isinstance(study_or_trial, FrozenTrial) and storage is None:
        raise ValueError("storage is required when study_or_trial is a FrozenTrial.")
    if not isinstance(figures, Mapping) or not all(isinstance(f, Figure) for f in figures.values()):
        raise TypeError("figures must be a mapping of names to matplotlib Figures.")
    uploaded: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="wwtune-artifacts-") as tmp:
        for name, fig in figures.items():
            stem = _SAFE.sub("_", str(name)).strip("._") or "figure"
            for path in save_figure(fig, Path(tmp) / stem, formats):
                uploaded[path.name] = upload_artifact(
                    artifact_store=artifact_store,
                    file_path=str(path),
                    study_or_trial=study_or_trial,
                    storage=storage,
                )
    logger.debug("attached %d figure file(s): %s", len(uploaded), sorted(uploaded))
    return uploaded


def attach_layer_figure(trial: Trial, table: object, band: object, artifacts_dir: Path) -> None:
    """Attach a running trial's α-per-layer figure (its latest layer table) as an Optuna artifact in
    ``artifacts_dir``: the drawing the showing layer hands the trial runner when ``study.artifacts=true``
    (``run_study(cfg, draw_trial=attach_layer_figure)``; the CLI does). The file is
    ``trial<N>_layer_alphas_step<S>.png``."""
    artifacts_dir = Path(artifacts_dir)
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    figure = plot_layer_alphas(table, band)  # type: ignore[arg-type]
    step = getattr(table, "attrs", {}).get("step")
    name = f"trial{trial.number}_layer_alphas_step{step}"
    attach_figures(trial, {name: figure}, FileSystemArtifactStore(str(artifacts_dir)))
