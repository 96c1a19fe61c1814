"""Run an Optuna study whose trials are short training runs scored by layer spectra.

:func:`run_study` takes the composed configuration (a plain dict, see ``conf/config.yaml``) and:

1. validates it (:func:`validate_config`: unknown keys and bad values fail before any training),
2. opens or resumes the study in its storage (``studies/<name>/journal.log`` by default),
3. runs trials: sample the search space → :class:`wwtune.objective.Params` → the task ``train(params,
   reporter)``; the :class:`StudyReporter` analyses the weights every ``report_every`` steps, scores them,
   stores the per-layer table, reports the score to Optuna and lets the pruner stop the run,
4. applies the sanity rules (NaN/Inf loss or weights, loss that did not fall) and stores every trial's
   diagnostics as user attrs (``wwtune.*``, see the team contract in the README),
5. writes ``best_params.yaml`` beside the storage,
6. when the task returns a held-out metric, stores the trust report (:func:`wwtune.trust.trust_report`:
   did the α score rank the trials as the held-out metric does?) as the study user attr ``wwtune.trust``;
   :func:`summary_text` prints it.

One bad trial never ends the study: a task exception fails that trial with its reason stored.
Library code logs; the CLI prints :func:`summary_text`.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import json
import logging
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import yaml
from optuna.trial import FrozenTrial, TrialState

from wwtune.bridge import _HAS_SET_CONSTRAINT, ON_VIOLATION, StudyReporter, TrialBridge, TrialFailed
from wwtune.bridge import json_safe as _json_safe
from wwtune.objective import Params, Pruned, TrainingDiverged
from wwtune.score import Score
from wwtune.search_space import SearchSpace, SearchSpaceError
from wwtune.storage import KNOWN_KEYS as STORAGE_KEYS
from wwtune.storage import StorageError, describe, make_storage, redact_config, study_dir
from wwtune.storage import kinds as storage_kinds
from wwtune.workers import INTERRUPTED, OVER_CAP, WORKER_ID_ENV, StudyTrialCap, resolve_worker_id, worker_seed

__all__ = [
    "ConfigError",
    "StudyReporter",
    "TrialFailed",
    "best_trial",
    "load_task",
    "run_study",
    "store_trust",
    "summary_text",
    "validate_config",
]

_logger = logging.getLogger(__name__)

#: Allowed keys of each section of the composed config. A teammate adding a section adds it here.
KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "": (
        "mode",
        "advise",
        "study",
        "objective",
        "search_space",
        "sampler",
        "pruner",
        "storage",
        "score",
        "sanity",
        "analysis",
        "worker_id",
    ),
    "study": (
        "name",
        "n_trials",
        "seed",
        "direction",
        "timeout",
        "studies_dir",
        "progress_bar",
        "torch_threads",
        "report",
        "artifacts",
        "spectra",
    ),
    "objective": ("task", "budget", "report_every", "data_fraction", "fixed", "heldout"),
    "objective.heldout": ("name", "direction"),
    "score": ("kind", "band", "min_evals", "weights", "failed_penalty", "tie_break"),
    "storage": STORAGE_KEYS,
    "sanity": ("check_weights", "min_loss_drop", "on_violation"),
}
MODES = ("optimize", "advise", "report")
_HYDRA_KEYS = ("_target_", "_convert_", "_recursive_", "_partial_", "_args_")
#: Optuna ≥ 5 records constraints per trial (``constraints_func`` is deprecated there).
#: Optional packages some Optuna samplers import only when they first sample.
_SAMPLER_PACKAGES = {"CmaEsSampler": "cmaes"}


class ConfigError(ValueError):
    """The composed configuration is invalid; the message names the key, the value and what is allowed."""


# --------------------------------------------------------------------------------------------------------
# configuration


def _unknown(section: str, given: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(given) - set(allowed))
    if not unknown:
        return
    where = f"'{section}'" if section else "the top level"
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, allowed, n=1)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise ConfigError(f"Unknown key(s) in {where}: {', '.join(hints)}; allowed: {sorted(allowed)}.")


def _check_target(section: str, node: Mapping[str, Any]) -> None:
    """A ``_target_`` node's keys must be arguments of the target (no silently ignored options)."""
    target = node.get("_target_")
    if not isinstance(target, str):
        raise ConfigError(
            f"'{section}' needs a '_target_' (e.g. optuna.samplers.TPESampler) but got {target!r}."
        )
    try:
        from hydra.utils import get_object

        obj = get_object(target)
    except Exception as exc:  # noqa: BLE001 - any import failure is a config error here
        raise ConfigError(f"'{section}._target_' {target!r} cannot be imported: {exc}") from None
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = tuple(k for k in params if k != "self") + _HYDRA_KEYS
    _unknown(section, node, allowed)
    _check_types(section, node, params)


def _check_types(section: str, node: Mapping[str, Any], params: Mapping[str, inspect.Parameter]) -> None:
    """Values of parameters annotated (or defaulting to) one plain kind (bool, int, float, str, optionally
    None) must be of that kind: a typo such as ``n_startup_trials=abc`` or ``multivariate=maybe`` fails
    here, not inside every trial."""
    for key, value in node.items():
        param = params.get(key)
        if param is None or value is None or key in _HYDRA_KEYS:
            continue
        kind = int if key == "seed" else _plain_kind(param)
        if kind is not None:
            _check_value(f"{section}.{key}", value, kind)


def _plain_kind(param: inspect.Parameter) -> type | None:
    kinds = {"bool": bool, "int": int, "float": float, "str": str}
    annotation = param.annotation
    if annotation is inspect.Parameter.empty:
        return type(param.default) if type(param.default) in kinds.values() else None
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    text = text.replace(" ", "").replace("typing.", "")
    if text.startswith("Optional[") and text.endswith("]"):
        text = text[len("Optional[") : -1]
    names = set(text.split("|")) - {"None"}
    return kinds.get(names.pop()) if len(names) == 1 else None


_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _check_value(key: str, value: Any, kind: type) -> None:
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ConfigError(f"{key} must be {_KIND_NAMES[kind]} but got {value!r}.")


def validate_config(cfg: Mapping[str, Any]) -> None:
    """Check the composed config: every key known, every value in range. Raises :class:`ConfigError`."""
    _unknown("", cfg, KNOWN_KEYS[""])
    for section in ("study", "objective", "score", "storage", "sanity"):
        node = cfg.get(section)
        if not isinstance(node, Mapping):
            raise ConfigError(f"Config section '{section}' is missing or not a mapping (got {node!r}).")
        _unknown(section, node, KNOWN_KEYS[section])
    mode = cfg.get("mode", "optimize")
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {list(MODES)} but got {mode!r}.")
    study, objective, sanity = cfg["study"], cfg["objective"], cfg["sanity"]
    _positive_int("study.n_trials", study.get("n_trials"))
    _positive_int("objective.budget", objective.get("budget"))
    _positive_int("objective.report_every", objective.get("report_every", 1))
    if not isinstance(study.get("seed"), int) or isinstance(study.get("seed"), bool):
        raise ConfigError(f"study.seed must be an integer but got {study.get('seed')!r}.")
    if study.get("direction", "auto") not in ("auto", "minimize", "maximize"):
        raise ConfigError(
            f"study.direction must be one of ['auto', 'minimize', 'maximize'] but got {study['direction']!r}."
        )
    threads = study.get("torch_threads")
    if threads is not None:
        _positive_int("study.torch_threads", threads)
    for key in ("progress_bar", "report", "artifacts", "spectra"):
        _check_value(f"study.{key}", study.get(key, False), bool)
    _check_value("sanity.check_weights", sanity.get("check_weights", True), bool)
    timeout = study.get("timeout")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ConfigError(f"study.timeout must be a positive number of seconds or null but got {timeout!r}.")
    frac = objective.get("data_fraction", 1.0)
    if not isinstance(frac, (int, float)) or not 0.0 < frac <= 1.0:
        raise ConfigError(f"objective.data_fraction must be in (0, 1] but got {frac!r}.")
    if not isinstance(objective.get("task"), str) or ":" not in objective["task"]:
        raise ConfigError(
            "objective.task must be 'module:function' (e.g. my_pkg.my_mod:train) "
            f"but got {objective.get('task')!r}."
        )
    fixed = objective.get("fixed") or {}
    if not isinstance(fixed, Mapping):
        raise ConfigError(f"objective.fixed must be a mapping of hyperparameter values but got {fixed!r}.")
    heldout = objective.get("heldout")
    if heldout is not None:
        if not isinstance(heldout, Mapping):
            raise ConfigError(f"objective.heldout must be {{name, direction}} or null but got {heldout!r}.")
        _unknown("objective.heldout", heldout, KNOWN_KEYS["objective.heldout"])
        if heldout.get("direction") not in ("minimize", "maximize"):
            raise ConfigError(
                "objective.heldout.direction must be one of ['minimize', 'maximize'] "
                f"but got {heldout.get('direction')!r}."
            )
    if sanity.get("on_violation", "fail") not in ON_VIOLATION:
        raise ConfigError(
            f"sanity.on_violation must be one of {list(ON_VIOLATION)} but got {sanity.get('on_violation')!r}."
        )
    drop = sanity.get("min_loss_drop", 0.0)
    if drop is not None and (not isinstance(drop, (int, float)) or not 0.0 <= drop < 1.0):
        raise ConfigError(f"sanity.min_loss_drop must be in [0, 1) or null but got {drop!r}.")
    for section in ("sampler", "pruner"):
        node = cfg.get(section)
        if not isinstance(node, Mapping):
            raise ConfigError(f"Config section '{section}' is missing or not a mapping (got {node!r}).")
        _check_target(section, node)
    analysis = cfg.get("analysis") or {}
    from wwtune.spectral import analyze

    analyze_params = inspect.signature(analyze).parameters
    allowed = tuple(k for k in analyze_params if k not in ("source", "keep_evals"))
    _unknown("analysis", analysis, allowed)
    _check_types("analysis", analysis, analyze_params)
    try:
        score = _score(cfg)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"score: {exc}") from None
    try:
        space = SearchSpace.from_config(cfg.get("search_space"))
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc)) from None
    kind = cfg["storage"].get("kind", "journal")
    if kind not in storage_kinds():
        raise ConfigError(f"storage.kind must be one of {storage_kinds()} but got {kind!r}.")
    clash = sorted(set(fixed) & set(space.names + list(space.constants)))
    if clash:  # fixed values double as a task's untuned defaults (the advisor reads them); search wins
        _logger.info("Searched hyperparameter(s) %s override their objective.fixed values.", clash)
    wanted = study.get("direction", "auto")
    if wanted != "auto" and wanted != score.direction:
        raise ConfigError(
            f"study.direction={wanted!r} contradicts score kind {score.kind!r}, which must be "
            f"{score.direction}d; set study.direction=auto."
        )
    if score.kind == "heldout" and heldout is None:
        raise ConfigError(
            "score.kind=heldout needs objective.heldout {name, direction}, but the objective has none."
        )


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer but got {value!r}.")


def _score(cfg: Mapping[str, Any]) -> Score:
    heldout = cfg["objective"].get("heldout") or {}
    return Score.from_config(cfg["score"], heldout_direction=heldout.get("direction", "maximize"))


def load_task(spec: str) -> Callable[..., Any]:
    """Import ``"module:function"``; the current directory is importable (for a user's own tasks)."""
    module_name, _, func_name = spec.partition(":")
    if not module_name or not func_name:
        raise ConfigError(f"objective.task must be 'module:function' but got {spec!r}.")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"objective.task {spec!r}: cannot import module {module_name!r}: {exc}") from None
    fn = getattr(module, func_name, None)
    if not callable(fn):
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise ConfigError(
            f"objective.task {spec!r}: module {module_name!r} has no function {func_name!r};"
            f" callables there: {public}."
        )
    return fn


# --------------------------------------------------------------------------------------------------------
# the trial function (the per-report step and the trial record: wwtune.bridge.TrialBridge)


class _TrialRunner:
    """The Optuna objective: one training run per trial."""

    def __init__(
        self,
        cfg: Mapping[str, Any],
        task_fn: Callable[..., Any],
        space: SearchSpace,
        score: Score,
        worker_id: int | None = None,
        cap: StudyTrialCap | None = None,
    ) -> None:
        self.cfg, self.task_fn, self.space, self.score = cfg, task_fn, space, score
        self.worker_id, self.cap = worker_id, cap
        obj = cfg["objective"]
        self.budget = int(obj["budget"])
        self.report_every = int(obj.get("report_every", 1))
        self.data_fraction = float(obj.get("data_fraction", 1.0))
        self.fixed = dict(obj.get("fixed") or {})
        self.seed = int(cfg["study"]["seed"])
        folder = study_dir(cfg["study"].get("studies_dir", "studies"), str(cfg["study"]["name"]))
        self.artifacts_dir = folder / "artifacts" if cfg["study"].get("artifacts", False) else None
        self.spectra_dir = folder / SPECTRA_DIR if cfg["study"].get("spectra", True) else None
        sanity = cfg["sanity"]
        self.min_loss_drop = sanity.get("min_loss_drop")
        self.on_violation = sanity.get("on_violation", "fail")
        self.check_weights = bool(sanity.get("check_weights", True))
        analysis = dict(cfg.get("analysis") or {})
        analysis.setdefault("min_evals", min(8, score.min_evals))
        self.analysis = analysis
        # the α score is stored even when the study optimises the held-out metric (for the trust report)
        self.alpha_score = (
            score
            if score.uses_alpha
            else Score(band=score.band, min_evals=score.min_evals, weights=score.weights)
        )

    def __call__(self, trial: optuna.trial.Trial) -> float:
        if self.cap is not None and not self.cap.admits(trial.study, trial.number):
            # another worker claimed the last slot a moment earlier: end this trial before it samples anything
            trial.set_user_attr(
                "wwtune.fail_reason",
                f"{OVER_CAP}: the study's {self.cap.n_trials} trials were already claimed by other workers; "
                "not run, not counted",
            )
            _logger.info("Trial %d not run: the study-wide cap was reached meanwhile.", trial.number)
            return float("nan")
        try:
            return self._run(trial)
        except TrialFailed as exc:
            # NaN makes Optuna record FAIL without re-logging a traceback; the reason is in the user attrs
            _logger.warning("Trial %d failed: %s", trial.number, exc)
            return float("nan")

    def _run(self, trial: optuna.trial.Trial) -> float:
        start = time.perf_counter()
        trial.set_user_attr("wwtune.budget", self.budget)
        trial.set_user_attr(
            "wwtune.worker", {"host": socket.gethostname(), "pid": os.getpid(), "worker_id": self.worker_id}
        )
        try:
            values, layers = self.space.suggest(trial)
        except Exception as exc:  # noqa: BLE001 - a sampler that cannot propose fails this trial only
            _logger.warning("Trial %d: sampling raised\n%s", trial.number, traceback.format_exc())
            self._fail(trial, f"sampling the parameters raised {type(exc).__name__}: {exc}")
        params = Params(
            values={**self.fixed, **values},
            layers=layers,
            budget=self.budget,
            seed=self.seed + trial.number,
            data_fraction=self.data_fraction,
        )
        # the same bridge a user's own loop uses (wwtune.TrialBridge): one implementation of the record
        reporter = TrialBridge(
            trial,
            score=self.alpha_score,
            budget=self.budget,
            report_every=self.report_every,
            analysis_kwargs=self.analysis,
            check_weights=self.check_weights,
            report_to_optuna=self.score.uses_alpha,
            keep_spectra=self.spectra_dir is not None,
            min_loss_drop=self.min_loss_drop,
            on_violation=self.on_violation,
            objective=self.score,
            started=start,
        )
        try:
            try:
                result = self.task_fn(params, reporter)
                if reporter.model is not None and reporter.analysed_step != reporter.last_step:
                    reporter.analyse(reporter.last_step, reporter.model)  # final weights always scored
                self._keep_spectra(trial, reporter)  # timed as analysis
            finally:
                reporter.close()
                if self.artifacts_dir is not None:
                    self._attach_layer_figure(trial)
        except KeyboardInterrupt:
            trial.set_user_attr("wwtune.fail_reason", f"{INTERRUPTED}: stopped by the user (Ctrl-C)")
            raise
        except Pruned as exc:
            if "wwtune.prune_reason" not in trial.user_attrs:
                trial.set_user_attr("wwtune.prune_reason", {"message": exc.reason, "step": exc.step})
            raise optuna.TrialPruned(exc.reason) from None
        except TrialFailed:
            raise
        except TrainingDiverged as exc:
            self._fail(trial, f"diverged: {exc}")
        except Exception as exc:  # noqa: BLE001 - one bad trial never ends the study
            _logger.warning("Trial %d: the task raised\n%s", trial.number, traceback.format_exc())
            self._fail(trial, f"task raised {type(exc).__name__}: {exc}")
        return self._finish(trial, reporter, result)

    def _keep_spectra(self, trial: optuna.trial.Trial, reporter: StudyReporter) -> None:
        """Store the final analysis' eigenvalues (``study.spectra``) for the report's ESD plots."""
        if self.spectra_dir is None or reporter.spectra is None:
            return
        start = time.perf_counter()
        try:
            write_trial_spectra(self.spectra_dir / f"trial{trial.number}.npz", reporter.spectra)
        except OSError as exc:  # a full disk loses the report's ESD plots, never the trial
            _logger.warning("Trial %d: could not store its spectra: %s", trial.number, exc)
        reporter.analysis_s += time.perf_counter() - start

    def _attach_layer_figure(self, trial: optuna.trial.Trial) -> None:
        """``study.artifacts=true``: attach the trial's α-per-layer figure as an Optuna artifact.

        Attached while the trial still runs (Optuna refuses changes to a finished trial); a failure to
        attach is logged and never fails the trial.
        """
        record = trial.user_attrs.get("wwtune.layers")
        if not record:
            return
        try:
            import pandas as pd
            from optuna.artifacts import FileSystemArtifactStore

            from wwtune.report import attach_figures, plot_layer_alphas

            assert self.artifacts_dir is not None
            self.artifacts_dir.mkdir(parents=True, exist_ok=True)
            table = pd.DataFrame({k: v for k, v in record.items() if isinstance(v, list)})
            figure = plot_layer_alphas(table, self.score.band)
            name = f"trial{trial.number}_layer_alphas_step{record.get('step')}"
            attach_figures(trial, {name: figure}, FileSystemArtifactStore(str(self.artifacts_dir)))
        except Exception:  # noqa: BLE001 - a figure is never worth a trial
            _logger.warning("Trial %d: could not attach its figure\n%s", trial.number, traceback.format_exc())

    def _fail(self, trial: optuna.trial.Trial, reason: str) -> None:
        trial.set_user_attr("wwtune.fail_reason", reason)
        raise TrialFailed(reason)

    def _finish(self, trial: optuna.trial.Trial, reporter: TrialBridge, result: Any) -> float:
        return reporter.finish(result)


def _constraints(trial: FrozenTrial) -> list[float]:
    return list(trial.user_attrs.get("wwtune.constraint", [0.0]))


# --------------------------------------------------------------------------------------------------------
# the study


def _instantiate(section: str, node: Mapping[str, Any], **extra: Any) -> Any:
    """Build ``node`` with Hydra; a bad argument value becomes a :class:`ConfigError` naming the section."""
    try:
        return _build(node, **extra)
    except Exception as exc:  # noqa: BLE001 - Hydra wraps the target's own ValueError/TypeError
        cause = exc.__cause__ or exc
        raise ConfigError(f"{section}: cannot build {node['_target_']}: {cause}") from None


def _build(node: Mapping[str, Any], **extra: Any) -> Any:
    from hydra.utils import get_object, instantiate

    target = get_object(node["_target_"])
    try:
        accepted = inspect.signature(target).parameters
    except (TypeError, ValueError):
        accepted = {}
    extra = {k: v for k, v in extra.items() if k in accepted and k not in node}
    return instantiate(dict(node), **extra)


def _fail_stale_trials(study: optuna.Study) -> int:
    """Mark FAIL the RUNNING trials of dead workers on this host (a killed run); returns their count.

    Not on a storage with heartbeats (PostgreSQL): there Optuna's stale-trial check fails a dead worker's
    trial after the grace period *and re-queues it*, which marking it here first would pre-empt.
    """
    if getattr(study._storage, "get_heartbeat_interval", lambda: None)() is not None:
        return 0
    host, n = socket.gethostname(), 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("wwtune.worker") or {}
        if worker.get("host") != host or _pid_alive(int(worker.get("pid", -1))):
            continue
        storage = study._storage
        storage.set_trial_user_attr(
            trial._trial_id,
            "wwtune.fail_reason",
            f"{INTERRUPTED}: worker process {worker.get('pid')} ended mid-trial",
        )
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        n += 1
    return n


def _reap_dead_workers(study: optuna.Study) -> None:
    """Fail the RUNNING trials of dead workers: by heartbeat (PostgreSQL; re-queues them) or by pid here."""
    optuna.storages.fail_stale_trials(study)
    _fail_stale_trials(study)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: folder (in the study's folder) of each trial's final eigenvalues, ``trial<N>.npz``
SPECTRA_DIR = "spectra"


def write_trial_spectra(path: str | os.PathLike[str], table: pd.DataFrame) -> Path:
    """Store an ``analyze(..., keep_evals=True)`` table: each layer's eigenvalues (float32) and its scalar
    columns (``alpha``, ``xmin``, ``D``, the MP fit, ...), enough to draw its ESD plots later."""
    if "evals" not in table.columns:
        raise ValueError("write_trial_spectra needs analyze(..., keep_evals=True): the table has no 'evals'.")
    rows = [
        {k: _json_safe(v) for k, v in row.items() if k != "evals" and not isinstance(v, (list, np.ndarray))}
        for row in table.to_dict("records")
    ]
    arrays = {f"evals_{i}": np.asarray(e, dtype=np.float32) for i, e in enumerate(table["evals"])}
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.npz")  # whole file, then renamed
    np.savez_compressed(tmp, rows=np.array(json.dumps(rows)), **arrays)
    os.replace(tmp, out)
    return out


def read_trial_spectra(path: str | os.PathLike[str]) -> pd.DataFrame | None:
    """The table :func:`write_trial_spectra` stored (with an ``evals`` column), or None if there is none."""
    try:
        with np.load(path) as data:
            rows = json.loads(str(data["rows"]))
            evals = [data[f"evals_{i}"].astype(np.float64) for i in range(len(rows))]
    except (OSError, KeyError, ValueError):
        return None
    table = pd.DataFrame(rows)
    table["evals"] = evals
    return table


def best_trial_spectra(study: optuna.Study, cfg: Mapping[str, Any]) -> pd.DataFrame | None:
    """The stored spectra of the study's best trial (for the report's ESD plots), or None."""
    best = best_trial(study)
    if best is None:
        return None
    folder = study_dir(cfg["study"].get("studies_dir", "studies"), str(cfg["study"]["name"]))
    return read_trial_spectra(folder / SPECTRA_DIR / f"trial{best.number}.npz")


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best COMPLETE, feasible trial (earliest wins a tie), or None."""
    trials = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and max(_constraints(t), default=0.0) <= 0.0
    ]
    if not trials:
        return None
    sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
    return min(trials, key=lambda t: (sign * t.value, t.number))


def shows_progress_bar(progress_bar: bool, worker_id: int | None) -> bool:
    """Whether a run shows Optuna's progress bar: asked for, and a lone worker (a worker with an id runs
    an open-ended share of the study, which a bar cannot show; it logs the study-wide count instead)."""
    return bool(progress_bar) and worker_id is None


def run_study(cfg: Mapping[str, Any], *, progress_bar: bool = False) -> optuna.Study:
    """Create or resume the study described by the composed config ``cfg`` and run its missing trials.

    Example (a tiny task; the CLI composes ``cfg`` from ``conf/``):

        .. code-block:: python

            from wwtune.cli import compose
            from wwtune.study import run_study

            cfg = compose(["study=quickstart", "study.n_trials=2", "storage.url=/tmp/q.log"])
            study = run_study(cfg)
    """
    validate_config(cfg)
    try:
        worker_id = resolve_worker_id(cfg.get("worker_id"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    study_cfg = cfg["study"]
    name = str(study_cfg["name"])
    score = _score(cfg)
    space = SearchSpace.from_config(cfg.get("search_space"))
    task_fn = load_task(cfg["objective"]["task"])
    infeasible = cfg["sanity"].get("on_violation", "fail") == "infeasible"
    # each worker samples with its own seed (worker 0 / no id: the study seed itself)
    sampler_node = dict(cfg["sampler"])
    if sampler_node.get("seed") is not None:
        try:
            sampler_node["seed"] = worker_seed(sampler_node["seed"], worker_id)
        except ValueError as exc:
            raise ConfigError(f"sampler.seed: {exc}") from None
    extra: dict[str, Any] = {"seed": worker_seed(study_cfg["seed"], worker_id)}
    if infeasible and not _HAS_SET_CONSTRAINT:  # Optuna < 5: constraints reach the sampler this way
        extra["constraints_func"] = _constraints
    if cfg["sampler"]["_target_"].rsplit(".", 1)[-1] == "GridSampler":
        try:
            extra["search_space"] = space.grid()
        except SearchSpaceError as exc:
            raise ConfigError(str(exc)) from None
    target = cfg["sampler"]["_target_"].rsplit(".", 1)[-1]
    needs = _SAMPLER_PACKAGES.get(target)
    if needs and importlib.util.find_spec(needs) is None:
        raise ConfigError(
            f"{target} needs the {needs!r} package (pip install {needs}); install it or "
            "pick another sampler: tpe, random, gp, grid."
        )
    sampler = _instantiate("sampler", sampler_node, **extra)
    pruner = _instantiate("pruner", cfg["pruner"])
    try:
        storage = make_storage(cfg["storage"], name, study_cfg.get("studies_dir", "studies"))
    except StorageError as exc:
        raise ConfigError(str(exc)) from None
    study = optuna.create_study(
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        study_name=name,
        direction=score.direction,
        load_if_exists=True,
    )
    if study.direction.name.lower() != score.direction:
        raise ConfigError(
            f"Study {name!r} in storage is {study.direction.name.lower()}d but score "
            f"{score.kind!r} is {score.direction}d; use another study.name."
        )
    stale = _fail_stale_trials(study)
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
    if cfg["storage"].get("kind") == "sqlite" and (
        worker_id is not None or study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    ):
        _logger.warning(
            "storage=sqlite is not safe for several workers (locked database, lost updates); use "
            "storage=journal on one machine or storage=postgres across machines."
        )
    previous = study.user_attrs.get("wwtune.config")
    # the study's config: no password (storage.url redacted), no per-worker id
    plain = _json_safe({k: v for k, v in redact_config(cfg).items() if k != "worker_id"})
    if previous is not None and _strip_n_trials(previous) != _strip_n_trials(plain):
        _logger.warning(
            "Study %r was created with a different configuration; resuming with the new one.", name
        )
    study.set_user_attr("wwtune.config", plain)
    study.set_user_attr("wwtune.band", list(score.band))
    heldout = cfg["objective"].get("heldout")
    study.set_user_attr("wwtune.heldout_direction", heldout.get("direction") if heldout else None)
    study.set_user_attr("wwtune.heldout_name", heldout.get("name") if heldout else None)

    threads = study_cfg.get("torch_threads")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    # study.n_trials is study-wide: every worker stops once the study holds that many counted trials
    cap = StudyTrialCap(
        int(study_cfg["n_trials"]),
        reap=_reap_dead_workers,
        timeout_s=study_cfg.get("timeout"),
        log_progress=not shows_progress_bar(progress_bar, worker_id),
    )
    n_total, done = cap.n_trials, cap.count(study)
    remaining = n_total - done
    _logger.info(
        "Study %r (%s): %d of %d trials done; %s.",
        name,
        describe(cfg["storage"], name, study_cfg.get("studies_dir", "studies")),
        done,
        n_total,
        score.describe(),
    )
    if remaining > 0 and not cap.wait_for_room(study):
        remaining = 0  # the other workers' running trials fill the study
    if remaining > 0:
        # A lone worker runs at most the missing trials (and can show a progress bar); a worker with an id
        # runs until the cap says stop, so it also runs trials re-queued from workers that died.
        study.optimize(
            _TrialRunner(cfg, task_fn, space, score, worker_id, cap),
            n_trials=remaining if worker_id is None else None,
            timeout=study_cfg.get("timeout"),
            catch=(Exception,),
            callbacks=[cap],
            show_progress_bar=shows_progress_bar(progress_bar, worker_id),
        )
    write_best_params(study, space, cfg)
    store_trust(study, heldout.get("direction") if heldout else None)
    return study


def store_trust(study: optuna.Study, heldout_direction: str | None) -> dict[str, Any] | None:
    """Compute the trust report and store it as the study user attr ``wwtune.trust``; None if no held-out.

    Only when the task has a held-out metric (``heldout_direction`` set) and at least one trial stored
    one (``wwtune.heldout``); otherwise nothing is stored and None is returned.
    """
    if heldout_direction is None:
        return None
    trials = study.get_trials(deepcopy=False)
    if not any(t.user_attrs.get("wwtune.heldout") is not None for t in trials):
        return None
    from wwtune.trust import trust_report

    report = _json_safe(trust_report(trials, heldout_direction))
    study.set_user_attr("wwtune.trust", report)
    _logger.info("%s", report["summary"])
    return report


#: study settings that may change from run to run of one study without changing what it searches
_PER_RUN_KEYS = ("n_trials", "timeout", "progress_bar", "report", "artifacts", "spectra", "torch_threads")


def _strip_n_trials(cfg: Any) -> Any:
    if not isinstance(cfg, Mapping):
        return cfg
    out = dict(cfg)
    out["study"] = {k: v for k, v in dict(out.get("study") or {}).items() if k not in _PER_RUN_KEYS}
    return out


def open_existing_study(cfg: Mapping[str, Any]) -> optuna.Study:
    """The stored study the config names (``mode=advise`` / ``mode=report``); ConfigError if there is none."""
    study_cfg = cfg["study"]
    name, studies_dir = str(study_cfg["name"]), study_cfg.get("studies_dir", "studies")
    try:
        storage = make_storage(cfg["storage"], name, studies_dir)
        return optuna.load_study(study_name=name, storage=storage)
    except StorageError as exc:
        raise ConfigError(str(exc)) from None
    except KeyError:
        raise ConfigError(
            f"No study named {name!r} in {describe(cfg['storage'], name, studies_dir)}; run it first "
            f"(python -m wwtune study=... study.name={name}), then mode={cfg.get('mode')}."
        ) from None


def report_path(cfg: Mapping[str, Any]) -> Path:
    study_cfg = cfg["study"]
    return study_dir(study_cfg.get("studies_dir", "studies"), str(study_cfg["name"])) / "report.html"


def best_params_path(cfg: Mapping[str, Any]) -> Path:
    study_cfg = cfg["study"]
    return study_dir(study_cfg.get("studies_dir", "studies"), str(study_cfg["name"])) / "best_params.yaml"


def write_best_params(study: optuna.Study, space: SearchSpace, cfg: Mapping[str, Any]) -> Path | None:
    """Write ``best_params.yaml`` (params, per-layer settings, fixed values, score); None if no best."""
    best = best_trial(study)
    if best is None:
        return None
    values, layers = space.split(best.params)
    doc = {
        "study": study.study_name,
        "trial": best.number,
        "score": best.value,
        "score_rule": _score(cfg).describe(),
        "heldout": best.user_attrs.get("wwtune.heldout"),
        "params": _json_safe(values),
        "layers": _json_safe(layers),
        "fixed": _json_safe(dict(cfg["objective"].get("fixed") or {})),
        "budget": cfg["objective"]["budget"],
        "seed": int(cfg["study"]["seed"]) + best.number,
    }
    path = best_params_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    # written whole under a unique name, then renamed: workers finishing together never interleave
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------------------------------------
# the end-of-study summary


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def summary_text(study: optuna.Study, cfg: Mapping[str, Any]) -> str:
    """A plain-text summary: counts, best trial, its per-layer α, failures, analysis overhead."""
    trials = study.get_trials(deepcopy=False)
    by_state = {s: [t for t in trials if t.state == s] for s in TrialState}
    score = _score(cfg)
    name = study.study_name
    lines = [
        f"Study {name!r}: {len(trials)} trials — {len(by_state[TrialState.COMPLETE])} complete, "
        f"{len(by_state[TrialState.PRUNED])} pruned, {len(by_state[TrialState.FAIL])} failed "
        f"[{describe(cfg['storage'], name, cfg['study'].get('studies_dir', 'studies'))}]",
        f"Objective: {score.describe()}",
    ]
    infeasible = [t for t in by_state[TrialState.COMPLETE] if max(_constraints(t), default=0.0) > 0]
    if infeasible:
        lines.append(
            f"Infeasible (kept, never best): {len(infeasible)} trial(s), e.g. #{infeasible[0].number}: "
            f"{infeasible[0].user_attrs.get('wwtune.infeasible_reason')}"
        )
    best = best_trial(study)
    if best is None:
        lines.append("No complete, feasible trial: no best parameters.")
    else:
        heldout = best.user_attrs.get("wwtune.heldout")
        hname = (cfg["objective"].get("heldout") or {}).get("name", "heldout")
        lines.append(
            f"Best trial #{best.number}: score {best.value:.4g}"
            + (
                f", held-out {hname} {heldout:.4g} (stored, not optimised)"
                if heldout is not None and score.kind != "heldout"
                else ""
            )
        )
        values, layers = SearchSpace.from_config(cfg.get("search_space")).split(best.params)
        lines.append("  params: " + (", ".join(f"{k}={_fmt(v)}" for k, v in values.items()) or "(none)"))
        for pattern, settings in layers.items():
            lines.append(f"  layer {pattern}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in settings.items()))
        table = best.user_attrs.get("wwtune.layers")
        if table:
            lines.append(
                f"  per-layer alpha at step {table['step']} (eligible: num_evals >= {score.min_evals};"
                f" band [{score.band[0]:g}, {score.band[1]:g}]):"
            )
            lines.append(f"    {'layer':<24} {'num_evals':>9} {'eligible':>8} {'alpha':>7}  warning")
            for i, layer in enumerate(table["name"]):
                alpha = table["alpha"][i]
                lines.append(
                    f"    {layer:<24} {table['num_evals'][i]:>9} {'yes' if table['eligible'][i] else 'no':>8}"
                    f" {alpha if alpha is None else format(alpha, '.3f'):>7}  {table['warning'][i] or ''}"
                )
        top = sorted(
            (t for t in by_state[TrialState.COMPLETE] if t.value is not None),
            key=lambda t: (-t.value if study.direction.name == "MAXIMIZE" else t.value, t.number),
        )[:5]
        if len(top) > 1:
            lines.append(
                "  top trials: "
                + ", ".join(
                    f"#{t.number} {t.value:.4g}"
                    + (
                        f" (held-out {t.user_attrs['wwtune.heldout']:.3g})"
                        if t.user_attrs.get("wwtune.heldout") is not None
                        else ""
                    )
                    for t in top
                )
            )
    for label, state, key in (
        ("Failed", TrialState.FAIL, "wwtune.fail_reason"),
        ("Pruned", TrialState.PRUNED, "wwtune.prune_reason"),
    ):
        for t in by_state[state][:5]:
            reason = t.user_attrs.get(key)
            if isinstance(reason, Mapping):
                reason = reason.get("message", reason)
            lines.append(f"{label} #{t.number}: {reason or 'no reason stored'}")
        if len(by_state[state]) > 5:
            lines.append(f"{label}: … and {len(by_state[state]) - 5} more")
    train = sum(t.user_attrs.get("wwtune.time_train_s", 0.0) for t in trials)
    analysis = sum(t.user_attrs.get("wwtune.time_analysis_s", 0.0) for t in trials)
    if train + analysis > 0:
        lines.append(
            f"Time: training {train:.1f} s, spectral analysis {analysis:.1f} s "
            f"({analysis / (train + analysis):.1%} of trial time)"
        )
    trust = study.user_attrs.get("wwtune.trust")
    if trust:
        from wwtune.trust import format_trust

        lines.append(format_trust(trust))
    path = best_params_path(cfg)
    if best is not None and path.exists():
        lines.append(f"Best parameters: {path}")
    return "\n".join(lines)
