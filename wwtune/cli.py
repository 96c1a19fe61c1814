"""``python -m wwtune study=<name> [overrides]``: compose the Hydra config, run the study, print a summary.

Configs ship inside the package (``pkg://wwtune.conf``); a ``conf/`` folder in the working directory
extends them (added to ``hydra.searchpath``), so a user's ``conf/study/mine.yaml`` and
``conf/objective/mine.yaml`` are found by name. Everything Hydra offers works: ``--cfg job`` prints the
composed config; ``--help`` and ``--version`` are answered before Hydra (``wwtune.cli_help``).
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

__all__ = ["compose", "main"]

CONFIG_PATH = "pkg://wwtune.conf"
CONFIG_NAME = "config"

_logger = logging.getLogger("wwtune.cli")
_exit_code: list[int] = [0]


_REDUNDANT = ("value nan is not acceptable", "failed with value nan", "failed with value None")


class _DropNanFailures(logging.Filter):
    """Optuna's "failed ... value nan is not acceptable" lines (wwtune already logged the real reason), its
    traceback for Ctrl-C (wwtune says the run was interrupted and how to resume) and its "Trial N failed with
    value None." after every failure (it follows the line that gives the reason, or follows Ctrl-C)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(s in message for s in _REDUNDANT):
            return False
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and _write_error_in(exc) is not None:
            return False  # a full disk: the CLI says it in one line (`wwtune: write error: ...`)
        return not isinstance(exc, KeyboardInterrupt) and "KeyboardInterrupt" not in message


def _write_error_in(exc: BaseException) -> Any:
    from wwtune.journal import write_error_in  # lazy, as in _write_report

    return write_error_in(exc)


class _TqdmHandler(logging.StreamHandler):
    """Console log lines written above the progress bar instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm  # lazy, as in _write_report

        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def _logs_above_bar() -> None:
    root = logging.getLogger()
    for i, handler in enumerate(list(root.handlers)):
        if type(handler) is logging.StreamHandler:
            bar_safe = _TqdmHandler(handler.stream)
            bar_safe.setLevel(handler.level)
            bar_safe.setFormatter(handler.formatter)
            root.handlers[i] = bar_safe


def _quiet_optuna(progress_bar: bool) -> None:
    import optuna  # lazy, as in _write_report

    if progress_bar:  # the bar shows the best value; Optuna's per-trial INFO lines would tear it
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        _logs_above_bar()
    source = logging.getLogger("optuna.study._optimize")  # a logger's filter sees the records it creates
    if not any(isinstance(f, _DropNanFailures) for f in source.filters):
        source.addFilter(_DropNanFailures())


def _write_report(study: Any, cfg: Any) -> None:  # cfg: the run's StudyConfig
    # lazy: the run's modules (torch, optuna, matplotlib) cost seconds that --help, --cfg and a refused
    # override need not pay (docs/architecture.md, "imports")
    from wwtune.pick import picked_trial
    from wwtune.record import report_path
    from wwtune.report import write_report
    from wwtune.study_folder import read_trial_spectra, spectra_path, study_folder

    picked, _ = picked_trial(study)  # the ESD plots show the returned trial (the pick rule's)
    spectra = None
    folder = study_folder(cfg.study)
    if picked is not None and spectra_path(folder, picked.number).exists():
        spectra = read_trial_spectra(spectra_path(folder, picked.number))
    path = write_report(study, report_path(cfg.study), spectra=spectra)
    print(f"Report: {path}")


def _run(cfg: DictConfig) -> None:
    # lazy, as in _write_report
    from hydra.core.hydra_config import HydraConfig

    # lazy: only the CLI run needs these
    from wwtune.config import ConfigError, load_config, normalize_config
    from wwtune.diskio import WriteError
    from wwtune.factories import make_score
    from wwtune.outcome import summary_text
    from wwtune.postgres import StorageConnectionError
    from wwtune.report.artifacts import attach_layer_figure
    from wwtune.study import open_existing_study, run_study, shows_progress_bar
    from wwtune.sweeper_migration import check_sweeper_node
    from wwtune.workers import resolve_worker_id

    moved = check_sweeper_node(OmegaConf.to_container(HydraConfig.get().sweeper, resolve=False))  # type: ignore[arg-type]
    if moved:
        print(f"wwtune: configuration error: {moved}", file=sys.stderr)
        _exit_code[0] = 2
        _forget_run_folder()
        return
    plain: dict[str, Any] = normalize_config(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    hydra_cfg = HydraConfig.get()
    searchpath = [o for o in hydra_cfg.overrides.hydra if o.lstrip("+").startswith("hydra.searchpath")]
    plain = own_search_space(plain, [*searchpath, *hydra_cfg.overrides.task])
    _job_study_name(plain, hydra_cfg)
    progress_bar = bool(plain.get("study", {}).get("progress_bar", True))
    mode = plain.get("mode", "optimize")
    try:
        worker_id = resolve_worker_id(plain.get("worker_id"))
    except ValueError:
        worker_id = None  # run_study names the bad value
    _quiet_optuna(shows_progress_bar(progress_bar, worker_id))
    try:
        plain = load_config(plain)  # the one parse of the run's config
        # the run's one Score, handed to the study, the advisor and the summary
        score = make_score(plain.score, plain.objective)
        if mode == "optimize":
            study = run_study(plain, progress_bar=progress_bar, score=score, draw_trial=attach_layer_figure)
        else:
            study = open_existing_study(plain)
            from wwtune.outcome import use_pick  # lazy, as summary_text above

            use_pick(study, plain.pick)  # pick=... on a stored study's report / advice: that rule, stored
        if mode == "advise":
            from wwtune.advice import format_advice, run_advice  # lazy, as in _write_report

            try:
                advice = run_advice(plain, study=study, score=score)
            except ValueError as exc:  # a task without the data-fraction knob, a held-out score, …
                raise ConfigError(str(exc)) from None
            print(format_advice(advice))
    except ConfigError as exc:
        print(f"wwtune: configuration error: {exc}", file=sys.stderr)
        _exit_code[0] = 2
        _forget_run_folder()
        return
    except StorageConnectionError as exc:  # unreachable server, wrong password: no traceback, no secret
        print(f"wwtune: storage error: {exc}", file=sys.stderr)
        _exit_code[0] = 2
        _forget_run_folder()
        return
    except WriteError as exc:  # a full disk: one line naming the file; the study stays readable
        print(f"wwtune: write error: {exc}", file=sys.stderr)
        _exit_code[0] = 1
        return
    except KeyboardInterrupt:
        print(
            "wwtune: interrupted; completed trials are stored. Run the same command again to resume.",
            file=sys.stderr,
        )
        _exit_code[0] = 130
        return
    if mode == "optimize":
        print(summary_text(study, plain, score))
    elif mode == "report":  # a stored study: the same calibration line as its summary printed
        from wwtune.outcome import calibration_text  # lazy, as summary_text above

        calibration = calibration_text(study)
        if calibration:
            print(calibration)
    if mode == "report" or plain.study.report:
        try:
            _write_report(study, plain)
        except WriteError as exc:
            print(f"wwtune: write error: {exc}", file=sys.stderr)
            _exit_code[0] = 1
            return
    _exit_code[0] = 0


def _forget_run_folder() -> None:
    """A refused run leaves nothing behind: remove the run folder Hydra wrote before wwtune saw the config
    (``.hydra/*.yaml``, the job's log) and the folders above it that are left empty (``hydra/``, the
    study's folder when this run made it)."""
    from hydra.core.hydra_config import HydraConfig  # lazy, as in _write_report

    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir).absolute()
    root = logging.getLogger()
    for handler in list(root.handlers):  # the job log: closed and detached, so nothing reopens it
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == out:
            root.removeHandler(handler)
            handler.close()
            Path(handler.baseFilename).unlink(missing_ok=True)
    if hc.output_subdir:
        shutil.rmtree(out / str(hc.output_subdir), ignore_errors=True)
    folder = out
    for _ in range(3):  # <time>/, hydra/, <studies_dir>/<name>/: each only when empty
        try:
            folder.rmdir()
        except OSError:
            break
        folder = folder.parent


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=CONFIG_NAME)
def _hydra_entry(cfg: DictConfig) -> None:
    _run(cfg)


def _with_user_conf(args: Sequence[str]) -> list[str]:
    """Add ``./conf`` (when present) to Hydra's search path, unless the user set ``hydra.searchpath``."""
    args = list(args)
    user_conf = Path.cwd() / "conf"
    if user_conf.is_dir() and not any(a.lstrip("+~").startswith("hydra.searchpath") for a in args):
        # next to the other overrides: Hydra's parser wants them in one run (`-m a=1 b=2`, `a=1 --cfg job`)
        first = next((i for i, a in enumerate(args) if "=" in a and not a.startswith("-")), 0)
        args.insert(first, f"hydra.searchpath=[file://{user_conf.as_posix()}]")
    return args


def _password_override(args: Sequence[str]) -> str | None:
    """The message for an override that puts a password into a URL, or None.

    Checked before Hydra starts: Hydra writes the command-line overrides and the composed config into the
    run's ``.hydra/`` folder (and ``multirun.yaml``) before wwtune sees them.
    """
    from wwtune.postgres import redact_url, url_has_password  # lazy, as in _write_report

    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or arg.startswith("-"):
            continue
        whole = value.strip("'\"[]() ")
        # the whole value, and each choice of a sweep (`a,b`, `choice(a, b)`)
        parts = [whole, *(p.strip("'\"[]()") for p in value.replace(",", " ").split())]
        if any("://" in url and url_has_password(url) for url in parts):
            shown = redact_url(whole) if url_has_password(whole) else "<a URL with a password>"
            return (
                f"{key.lstrip('+~')}={shown} puts a password on the command line, where Hydra "
                "would write it to the run folder; put the URL in $WWTUNE_STORAGE_URL (storage=postgres "
                "reads it from there) or keep the password in PGPASSWORD / ~/.pgpass."
            )
    return None


def _uncreatable_studies_dir(args: Sequence[str]) -> str | None:
    """A ``study.studies_dir=`` override that cannot be created (Hydra's run folder lives inside it, and
    Hydra would fail with a traceback before wwtune starts)."""
    if "--cfg" in args or "-c" in args or "--info" in args:
        return None
    for arg in args:
        key, sep, value = arg.partition("=")
        value = value.strip("'\"")
        plain = value and "," not in value and "$" not in value  # not a sweep, not an interpolation
        if sep and key.lstrip("+~") == "study.studies_dir" and plain:
            try:
                Path(value).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                return f"study.studies_dir={value!r} cannot be created: {exc.strerror or exc}."
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); returns the process exit code."""
    # lazy: only the CLI run needs these
    from wwtune.sweeper_migration import check_composed, check_overrides

    args = _with_user_conf(sys.argv[1:] if argv is None else argv)
    # a mistyped key is named here, alone: after Hydra it would follow Hydra's own error and its advice
    refused = (
        _password_override(args)
        or check_overrides(args)
        or _uncreatable_studies_dir(args)
        or _unknown_override(args)
    )
    refused = refused or check_composed(args)
    composed = None if refused else _composed(args)
    refused = refused or _bad_study_name(args, composed)
    if refused:
        print(f"wwtune: configuration error: {refused}", file=sys.stderr)
        return 2
    no_room = _no_room_for_run_folder(composed)
    if no_room:
        print(f"wwtune: write error: {no_room}", file=sys.stderr)
        return 1
    saved = sys.argv
    sys.argv = ["wwtune", *args]
    _exit_code[0] = 0
    os.environ[SWEPT_ENV] = ",".join(swept_keys(args))  # read by each job (joblib workers too)
    try:
        _hydra_entry()
    except SystemExit as exc:  # Hydra exits on its own errors (unknown group choice, bad override)
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    finally:
        sys.argv = saved
    return _exit_code[0]


_NO_RUN_FLAGS = ("--cfg", "-c", "--info", "-i", "--help", "-h", "--hydra-help", "--version")


def _bad_study_name(args: Sequence[str], composed: dict[str, Any] | None) -> str | None:
    """A ``study.name`` that is not a plain folder name, from the command line or the composed config.

    Checked before Hydra starts: Hydra writes its run folder (``<studies_dir>/<name>/hydra/…``) and
    ``cli.log`` before wwtune sees the config, so ``study.name=../../etc/x`` would write outside
    ``studies_dir``, and a name with a space would stop in Hydra's parser with a traceback.
    """
    from wwtune.record import check_study_name  # lazy: as the other checks, before Hydra starts

    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or arg.startswith("-") or key.lstrip("+~") != "study.name":
            continue
        whole = value.strip("'\"")
        if any(c.isspace() for c in value) or "/" in value or "\\" in value:
            choices = [whole]
        elif "$" in value or "(" in value:  # an interpolation or a sweep function: checked once composed
            choices = []
        else:  # a value, or the choices of a sweep (`a,b`)
            choices = [c.strip("'\"[] ") for c in whole.split(",")] if "," in whole else [whole]
        for choice in choices:
            try:
                check_study_name(choice)
            except ValueError as exc:
                return str(exc)
    if composed is not None:
        try:
            check_study_name(composed.get("study", {}).get("name"))
        except ValueError as exc:
            return str(exc)
    return None


def _composed(args: Sequence[str]) -> dict[str, Any] | None:
    """The config a run with ``args`` would get, or None when it cannot be known before Hydra starts (a
    sweep, an information flag, a config Hydra itself will refuse with its own message)."""
    info = ("-m", "--multirun", *_NO_RUN_FLAGS)
    if any(a in info or a.startswith("--shell-completion") for a in args):
        return None
    overrides = [
        a for a in args if "=" in a and not a.startswith("-") and not a.lstrip("+~").startswith("hydra.")
    ]
    try:
        return compose(overrides)
    except Exception:  # noqa: BLE001 - a bad override or a missing value: Hydra reports it
        return None


#: bytes the run folder must be able to take before Hydra starts (its .hydra/*.yaml, cli.log, the journal)
_RUN_FOLDER_ROOM = 64 * 1024


def _no_room_for_run_folder(composed: dict[str, Any] | None) -> str | None:
    """The message when the study's folder cannot take a small file (a full disk, a read-only mount).

    Hydra saves the composed config into the run folder before wwtune starts, and a failure there is a
    traceback; writing (then removing) a probe file of :data:`_RUN_FOLDER_ROOM` bytes first turns it into
    one line.
    """
    if composed is None:
        return None
    study = composed.get("study") or {}
    folder = Path(str(study.get("studies_dir", "studies"))) / str(study.get("name"))
    probe = folder / f".wwtune-space-check.{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0" * _RUN_FOLDER_ROOM)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        return (
            f"the study folder {str(folder)!r} cannot take a {_RUN_FOLDER_ROOM // 1024} kB file "
            f"({exc.strerror or exc}): Hydra's run record (.hydra/config.yaml, cli.log) and the study's "
            "trials would not be written. Free some space (or pick another study.studies_dir) and run again."
        )
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass
    return None


def _unknown_override(args: Sequence[str]) -> str | None:
    """For an override of a key the config does not have (``study.n_trails=3``): the message naming it, a
    close match and the allowed keys; None when that is not what went wrong."""
    from wwtune.config import ConfigError, unknown_keys  # lazy, as in _write_report

    overrides = [
        a for a in args if "=" in a and not a.startswith("-") and not a.lstrip("+~").startswith("hydra.")
    ]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        if any(o.is_sweep_override() for o in parsed):
            return None
        compose(overrides)
        return None
    except HydraException as exc:
        choice = _unknown_choice(str(exc))
        if choice:
            return choice
        found = re.search(r"Could not override '([^']+)'", str(exc))
    except Exception:  # noqa: BLE001 - not a missing key; Hydra's own message stands
        return None
    if not found:
        return None
    key = found.group(1)
    try:
        node: Any = compose([o for o in overrides if o.partition("=")[0] != key])
    except Exception:  # noqa: BLE001
        return None
    parent, _, leaf = key.rpartition(".")
    for part in parent.split(".") if parent else ():
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict):
        return None
    try:
        unknown_keys(parent, {leaf: None}, tuple(node))
    except ConfigError as err:
        return f"{err} (To add a key the config does not have, write +{key}=...)"
    return None


def _unknown_choice(message: str) -> str | None:
    """For Hydra's "Could not find 'group/choice'" (``sampler=nosuch``, ``study=quickstrat``): one line
    naming the bad choice, a close match and the choices there are; None for any other error."""
    found = re.search(r"Could not find '([^']+)/([^'/]+)'", message)
    if not found:
        return None
    group, choice = found.groups()
    listed = re.search(rf"Available options in '{re.escape(group)}':\n((?:\t[^\n]*\n?)*)", message)
    options = sorted(line.strip() for line in listed.group(1).splitlines() if line.strip()) if listed else []
    close = difflib.get_close_matches(choice, options, n=1)
    head = f"{group}={choice}: there is no {group} config named {choice!r}"
    if close:
        return f"{head}; did you mean {group}={close[0]}? Choices: {', '.join(options)}."
    if options:
        return f"{head}; did you mean one of {', '.join(options)}?"
    return f"{head}."


def compose(overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The composed config as a plain dict, for use from Python (no run directory, no logging set-up)."""
    overrides = _with_user_conf(overrides)
    with initialize_config_module(config_module="wwtune.conf", version_base="1.3"):
        cfg = hydra_compose(config_name=CONFIG_NAME, overrides=overrides)
        return own_search_space(OmegaConf.to_container(cfg, resolve=True), overrides)  # type: ignore[arg-type]


def own_search_space(cfg: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A ``search_space`` written in a study or user config **replaces** the selected ``search_space``
    group's entries (its ``params``, and its ``layers`` when it gives layers) instead of merging into them,
    unless it sets ``search_space.extend: true``. Command-line overrides of ``search_space.params.<name>``
    / ``search_space.layers.<pattern>`` edit the result key by key, as any Hydra override. (Composes the
    config once more without the group, inside Hydra's current context, to see what the configs wrote.)"""
    space = cfg.get("search_space")
    if not isinstance(space, dict) or space.get("extend"):
        return cfg
    rest = [o for o in overrides if not o.lstrip("+~").startswith("search_space")]
    try:
        without_group = hydra_compose(config_name=CONFIG_NAME, overrides=[*rest, "~search_space"])
    except HydraException:  # no search_space group to leave out (a config without one): nothing to replace
        return cfg
    written = without_group.get("search_space")
    written = OmegaConf.to_container(written, resolve=True) if written is not None else {}
    named: dict[str, set[str]] = {"params": set(), "layers": set()}
    for override in overrides:
        key = override.partition("=")[0].lstrip("+~").split(".")
        if len(key) >= 3 and key[0] == "search_space" and key[1] in named:
            named[key[1]].add(key[2])
    for part, keys in named.items():
        mine = written.get(part) if isinstance(written, dict) else None
        if mine and isinstance(space.get(part), dict):
            # an entry the config wrote replaces the group's whole entry (no key-by-key merge of specs)
            space[part] = {
                k: (mine[k] if k in mine and k not in keys else v)
                for k, v in space[part].items()
                if k in mine or k in keys
            }
    return cfg


#: the keys a ``-m`` command line sweeps (other than ``worker_id`` and ``study.name``), for each job's study
SWEPT_ENV = "WWTUNE_SWEPT_KEYS"


def swept_keys(args: Sequence[str]) -> list[str]:
    """The keys ``-m`` sweeps that would otherwise run every job on one study (``-m worker_id=0,1`` is
    several workers on one study, meant; a swept or interpolated ``study.name`` names each job's own)."""
    if not any(a in ("-m", "--multirun") for a in args):
        return []
    keys: list[str] = []
    for arg in args:
        if "=" not in arg or arg.startswith("-"):
            continue
        try:
            override = OverridesParser.create().parse_overrides([arg])[0]
        except HydraException:
            continue  # Hydra reports its own parse errors
        key = override.get_key_element().lstrip("+~")
        if key == "study.name" and (override.is_sweep_override() or "${" in arg):
            return []
        if override.is_sweep_override() and key != "worker_id":
            keys.append(key)
    return keys


def _job_study_name(plain: dict[str, Any], hydra_cfg: Any) -> None:
    """In a ``-m`` job over other keys than ``worker_id``: the study name gets the job's swept values
    (``quickstart.hidden-128``), so the jobs of a grid do not run (and refuse to resume) one study."""
    keys = [k for k in os.environ.get(SWEPT_ENV, "").split(",") if k]
    if not keys or str(hydra_cfg.mode) != "RunMode.MULTIRUN":
        return
    values = {o.partition("=")[0].lstrip("+~"): o.partition("=")[2] for o in hydra_cfg.overrides.task}
    suffix = "_".join(f"{k.rsplit('.', 1)[-1]}-{values.get(k, '')}" for k in keys)
    name = plain["study"]["name"] + "." + re.sub(r"[^\w.-]", "_", suffix)
    logging.getLogger(__name__).warning("-m job %d: study.name=%s", hydra_cfg.job.num, name)
    plain["study"]["name"] = name
