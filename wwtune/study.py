"""Run an Optuna study whose trials are short training runs scored by layer spectra.

:func:`run_study` takes the composed configuration (a plain dict, see ``conf/config.yaml``) and:

1. validates it (:func:`wwtune.config.validate_config`: unknown keys and bad values fail before any
   training),
2. opens or resumes the study in its storage (``studies/<name>/journal.log`` by default), failing the
   trials of workers that died (:mod:`wwtune.reaping`),
3. runs trials (:class:`wwtune.trial.TrialRunner`): sample the search space → :class:`wwtune.objective.Params`
   → the task ``train(params, reporter)``; the :class:`wwtune.bridge.StudyReporter` analyses the weights
   every ``report_every`` steps, scores them, stores the per-layer table, reports the score to Optuna and
   lets the pruner stop the run,
4. applies the sanity rules (NaN/Inf loss or weights, loss that did not fall) and stores every trial's
   diagnostics as user attrs (``wwtune.*``, :mod:`wwtune.record`),
5. writes ``best_params.yaml`` beside the storage (:mod:`wwtune.outcome`),
6. when the task returns a held-out metric, stores the trust report (:func:`wwtune.trust.trust_report`:
   did the α score rank the trials as the held-out metric does?) as the study user attr ``wwtune.trust``;
   :func:`wwtune.outcome.summary_text` prints it.

One bad trial never ends the study: a task exception fails that trial with its reason stored.
Library code logs; the CLI prints the summary.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from wwtune.config import (
    ConfigError,
    load_config,
    load_task,
    loss_comparable,
)
from wwtune.deprecation import moved
from wwtune.factories import make_pruner, make_sampler, make_score, make_storage
from wwtune.journal import write_error_in
from wwtune.outcome import store_trust, write_best_params
from wwtune.reaping import fail_stale_trials, process_identity, reap_dead_workers
from wwtune.record import STUDY_CONFIG, WORKER, json_safe, studies_dir, write_study_attrs
from wwtune.resume import (
    CurrentRuleSampler,
    check_config_change,
    distribution_clash,
    record_score_rule,
    score_rule,
    stored_trial_count,
)
from wwtune.schema import StudyConfig
from wwtune.score import Score
from wwtune.search_space import SearchSpace
from wwtune.storage import describe, redact_config
from wwtune.trial import DrawTrial, TrialRunner
from wwtune.workers import WORKER_ID_ENV, StudyTrialCap, resolve_worker_id

__all__ = [
    "OpenStudy",
    "finish",
    "open_existing_study",
    "open_study",
    "optimise",
    "run_study",
    "shows_progress_bar",
]

_logger = logging.getLogger(__name__)

#: names this module used to re-export, and their homes: importing them from here still works, with a
#: DeprecationWarning (one minor version); ConfigError, load_task, TrialRunner,
#: store_trust and write_best_params are still imported here (used), but live in their homes too
_MOVED = {
    "bridge": ("StudyReporter",),
    "config": ("validate_config",),
    "exceptions": ("TrialFailed",),
    "outcome": ("summary_text",),
    "ranking": ("best_trial", "best_trial_spectra"),
    "study_folder": (
        "SPECTRA_DIR",
        "best_params_path",
        "read_trial_spectra",
        "report_path",
        "write_trial_spectra",
    ),
}


def __getattr__(name: str) -> Any:
    home = next((h for h, names in _MOVED.items() if name in names), None)
    if home is not None:
        # lazy: only old code asks for a moved name
        from wwtune import bridge, config, exceptions, outcome, ranking, study_folder

        homes = (bridge, config, exceptions, outcome, ranking, study_folder)
        return moved(__name__, name, next(m for m in homes if m.__name__ == f"wwtune.{home}"))
    raise AttributeError(f"module 'wwtune.study' has no attribute {name!r}")


def shows_progress_bar(progress_bar: bool, worker_id: int | None) -> bool:
    """Whether a run shows Optuna's progress bar: asked for, and a lone worker (a worker with an id runs
    an open-ended share of the study, which a bar cannot show; it logs the study-wide count instead)."""
    return bool(progress_bar) and worker_id is None


def run_study(
    cfg: Mapping[str, Any],
    *,
    progress_bar: bool = False,
    score: Score | None = None,
    draw_trial: DrawTrial | None = None,
) -> optuna.Study:
    """Create or resume the study described by the composed config ``cfg`` and run its missing trials:
    :func:`open_study`, then :func:`optimise`, then :func:`finish`.

    ``score`` is the run's :class:`~wwtune.score.Score` when the caller built it already (the CLI hands
    the same one to the summary); by default it is built from ``cfg``. ``draw_trial`` is the figure the
    showing layer attaches to each trial when ``study.artifacts=true``
    (:func:`wwtune.report.artifacts.attach_layer_figure`; the CLI passes it): this module draws nothing.

    Example (a tiny task; the CLI composes ``cfg`` from ``conf/``):

        .. code-block:: python

            from wwtune.cli import compose
            from wwtune.study import run_study

            cfg = compose(["study=quickstart", "study.n_trials=2", "storage.url=/tmp/q.log"])
            study = run_study(cfg)
    """
    run = open_study(cfg, progress_bar=progress_bar, score=score)
    optimise(run, draw_trial)
    return finish(run)


@dataclasses.dataclass
class OpenStudy:
    """A study opened for a run (:func:`open_study`): what :func:`optimise` and :func:`finish` need."""

    study: optuna.Study
    config: StudyConfig
    score: Score
    space: SearchSpace
    task_fn: Callable[..., Any]
    worker_id: int | None
    cap: StudyTrialCap
    progress_bar: bool


def open_study(
    cfg: Mapping[str, Any], *, progress_bar: bool = False, score: Score | None = None
) -> OpenStudy:
    """Parse ``cfg`` (once), open or resume its study in its storage (failing the trials of workers that
    died), check a resumed study's config and store the study's attrs."""
    config = load_config(cfg)  # normalised and validated once (a StudyConfig is taken as it is)
    try:
        worker_id = resolve_worker_id(config.worker_id)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    name = str(config.study.name)
    score = score or make_score(config.score, config.objective)
    space = SearchSpace.from_config(config.search_space)
    task_fn = load_task(config.objective.task)
    seeding = {"seed": config.study.seed, "constrained": config.sanity.on_violation == "infeasible"}
    # a bad sampler fails before the storage is made
    sampler = make_sampler(config.sampler, space, worker_id=worker_id, **seeding)
    pruner = make_pruner(config.pruner)
    # each trial's creation record names its worker, so a trial is never left without one (a full disk
    # between creating a trial and its first attrs) and waited on as another worker's
    storage = make_storage(
        config.storage, config.study, creator_attrs=lambda: {WORKER: process_identity(worker_id)}
    )
    n_existing = stored_trial_count(storage, name)
    if n_existing:  # a resumed run must not replay the first run's seed sequence (same start-up trials)
        sampler = make_sampler(config.sampler, space, worker_id=worker_id, n_existing=n_existing, **seeding)
    study = _open_or_create(storage, name, sampler, pruner, score.directions)
    stored = [d.name.lower() for d in study.directions]
    if stored != score.directions:
        raise ConfigError(
            f"Study {name!r} in storage has directions {stored} but score "
            f"{score.kind!r} needs {score.directions}; use another study.name."
        )
    _name_metric(study, score, config.objective.heldout)
    stale = fail_stale_trials(study)
    if stale:
        _logger.warning("Marked %d trial(s) of an interrupted run as failed.", stale)
    if worker_id is None and study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        _logger.warning(
            "Other workers are running trials of study %r, and this one has no worker id, so it samples "
            "with the study seed like worker 0 and may repeat its trials; give each worker its own id "
            "(worker_id=N or $%s).",
            name,
            WORKER_ID_ENV,
        )
    if config.storage.get("kind") == "sqlite" and (
        worker_id is not None or study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    ):
        _logger.warning(
            "storage=sqlite is not safe for several workers (locked database, lost updates); use "
            "storage=journal on one machine or storage=postgres across machines."
        )
    _store_study_attrs(study, config, score, space, task_fn)
    threads = config.study.torch_threads
    if threads:
        torch.set_num_threads(int(threads))
    # study.n_trials is study-wide: every worker stops once the study holds that many counted trials
    cap = StudyTrialCap(
        int(config.study.n_trials),
        reap=reap_dead_workers,
        timeout_s=config.study.timeout,
        log_progress=not shows_progress_bar(progress_bar, worker_id),
    )
    return OpenStudy(study, config, score, space, task_fn, worker_id, cap, progress_bar)


def _store_study_attrs(
    study: optuna.Study, config: StudyConfig, score: Score, space: SearchSpace, task_fn: Callable[..., Any]
) -> None:
    """The study's config (no password, no per-worker id) and score rule; a resumed study's config check."""
    name = study.study_name
    previous = study.user_attrs.get(STUDY_CONFIG)
    plain = json_safe({k: v for k, v in redact_config(config).items() if k != "worker_id"})
    if previous is not None:
        check_config_change(
            name,
            _strip_n_trials(previous),
            _strip_n_trials(plain),
            distribution_clash(space.dimensions, study.get_trials(deepcopy=False)),
            bool(config.study.allow_config_change),
        )
    earlier = record_score_rule(study, previous, score_rule(plain))
    if earlier:  # study.allow_config_change=true under another score: its values are not comparable
        _logger.warning(
            "Study %r: %d trial(s) were scored under an earlier score rule; they are kept but not "
            "ranked: the summary, best_params.yaml, the report, the trust report and the sampler use only "
            "trials scored under the current one.",
            name,
            len(earlier),
        )
        study.sampler = CurrentRuleSampler(study.sampler)
    comparable = loss_comparable(config.objective, task_fn)
    write_study_attrs(study, plain, score.band, config.objective.heldout, score.kind, comparable)


def optimise(run: OpenStudy, draw_trial: DrawTrial | None = None) -> None:
    """Run the study's missing trials (:class:`~wwtune.trial.TrialRunner`) up to its study-wide cap."""
    study, config, score, worker_id, cap = run.study, run.config, run.score, run.worker_id, run.cap
    name = study.study_name
    if config.study.artifacts and draw_trial is None:
        _logger.warning(
            "study.artifacts=true but no figure drawing was passed (draw_trial): no figures are attached; "
            "pass draw_trial=wwtune.report.artifacts.attach_layer_figure, as the CLI does."
        )
    n_total, done = cap.n_trials, cap.count(study)
    remaining = n_total - done
    _logger.info(
        "Study %r (%s): %d of %d trials done; %s.",
        name,
        describe(config.storage, name, studies_dir(config.study)),
        done,
        n_total,
        score.describe(),
    )
    if remaining <= 0 and worker_id is None:
        more = max(n_total // 2, 1)
        _logger.warning(
            "Study %r already holds %d of its study.n_trials=%d trials: nothing to run. To add trials, raise "
            "it (study.n_trials=%d adds %d).",
            name,
            done,
            n_total,
            n_total + more,
            more,
        )
    if remaining > 0 and not cap.wait_for_room(study):
        remaining = 0  # the other workers' running trials fill the study
    if remaining <= 0:
        return
    # A lone worker runs at most the missing trials (and can show a progress bar); a worker with an id
    # runs until the cap says stop, so it also runs trials re-queued from workers that died.
    runner = TrialRunner(config, run.task_fn, run.space, score, worker_id, cap, draw_trial=draw_trial)
    try:
        study.optimize(
            runner,
            n_trials=remaining if worker_id is None else None,
            timeout=config.study.timeout,
            catch=(Exception,),
            callbacks=[cap],
            show_progress_bar=shows_progress_bar(run.progress_bar, worker_id),
        )
    except Exception as exc:  # Optuna hides a failed write behind "Should not reach": name the write
        lost = write_error_in(exc)
        if lost is None or lost is exc:
            raise
        raise lost from None


def finish(run: OpenStudy) -> optuna.Study:
    """After the trials: ``best_params.yaml`` and the trust report (when the task has a held-out metric)."""
    write_best_params(run.study, run.space, run.config, run.score)
    heldout = run.config.objective.heldout
    store_trust(run.study, heldout.get("direction") if heldout else None)
    return run.study


#: study settings that may change from run to run of one study without changing what it searches
_PER_RUN_KEYS = (
    "n_trials",
    "timeout",
    "trial_timeout",
    "allow_config_change",
    "progress_bar",
    "report",
    "studies_dir",  # where the study lives is not part of its configuration
    "artifacts",
    "spectra",
    "torch_threads",
)


def _open_or_create(
    storage: Any, name: str, sampler: Any, pruner: Any, directions: list[str]
) -> optuna.Study:
    """The stored study ``name``, loaded without writing (so a run refused next leaves the storage as it
    was), or a new one."""
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return optuna.create_study(
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            study_name=name,
            directions=directions,
            load_if_exists=True,  # another worker may create it at the same moment
        )
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)


def _strip_n_trials(cfg: Any) -> Any:
    if not isinstance(cfg, Mapping):
        return cfg
    out = {k: v for k, v in cfg.items() if k != "pick"}  # the pick changes no trial: any run may change it
    out["study"] = {k: v for k, v in dict(out.get("study") or {}).items() if k not in _PER_RUN_KEYS}
    return out


def open_existing_study(cfg: Mapping[str, Any]) -> optuna.Study:
    """The stored study the config names (``mode=advise`` / ``mode=report``); ConfigError if there is none."""
    config = load_config(cfg)
    name, folder = str(config.study.name), studies_dir(config.study)
    try:
        return optuna.load_study(study_name=name, storage=make_storage(config.storage, config.study))
    except KeyError:
        raise ConfigError(
            f"No study named {name!r} in {describe(config.storage, name, folder)}; run it first "
            f"(python -m wwtune study=... study.name={name}), then mode={config.mode}."
        ) from None


def _name_metric(study: optuna.Study, score: Score, heldout_section: Mapping[str, Any] | None) -> None:
    """Name the objective for optuna-dashboard (else it shows "Objective 0")."""
    heldout = (heldout_section or {}).get("name", "held-out metric")
    if score.kind == "heldout":
        names = [heldout]
    elif score.multi_objective:
        names = ["final training loss (lower is better)", "alpha band distance (lower is better)"]
    elif score.kind == "train_loss":
        names = ["final training loss (lower is better)"]
    elif score.uses_train_loss:
        names = [f"{score.kind} score: training loss and alpha (lower is better)"]
    else:
        names = ["alpha score (lower is better)"]
    if study.metric_names != names:
        with warnings.catch_warnings():  # set_metric_names is experimental in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
