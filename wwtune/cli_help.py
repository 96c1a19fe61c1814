"""``wwtune --help`` and ``wwtune --version``: answered before Hydra starts (Hydra's own page stays behind
``--hydra-help``)."""

from __future__ import annotations

import textwrap
from importlib import metadata, resources
from pathlib import Path

__all__ = ["HELP_FLAGS", "VERSION_FLAGS", "help_text", "version_text"]

HELP_FLAGS = ("--help", "-h")
VERSION_FLAGS = ("--version", "-V")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def version_text() -> str:
    """``wwtune 0.1.0 (optuna 4.x, hydra-core 1.3.x, torch 2.x, Python 3.x)``."""
    import platform  # lazy: only --version needs it

    deps = ", ".join(f"{name} {_version(name)}" for name in ("optuna", "hydra-core", "torch"))
    return f"wwtune {_version('wwtune')} ({deps}, Python {platform.python_version()})"


def _config_groups() -> tuple[Path, dict[str, list[str]]]:
    root = Path(str(resources.files("wwtune.conf")))
    groups = {
        d.name: sorted(p.stem for p in d.glob("*.yaml"))
        for d in sorted(root.iterdir())
        if d.is_dir() and any(d.glob("*.yaml"))
    }
    return root, groups


#: the "which score for which situation" table of docs/choosing-a-score.md, in the --help's columns
SITUATIONS = """\
situation                          use                             default      train loss   fit_band
short clean runs (digits_mlp)      the default or pick=train_loss  0.013/0.009  0.008/0.009  0.009/0.010
short clean runs (digits_cnn)      the default or pick=train_loss  0.007/0.033  0.014/0.002  0.008/0.039
wide teacher-student regression    score=fit_band pick=value       0.082/0.088  0.082/0.088  0.032/0.052
char-level transformer (char_lm)   pick=train_loss                 0.033/0.082  0.023/0.000  0.323/0.253
noisy labels (digits_noisy)        score=fit_band pick=value       0.155/0.082  0.194/0.142  0.133/0.058
tiny corpus LM (char_lm_small)     score=fit_band pick=value       0.544/0.259  0.551/0.327  0.093/0.066
the literal "weighted average layer alpha": score=band pick=value
held-out data once: run with it and use the summary's "Calibration:" override"""


def help_text() -> str:
    """The page ``wwtune --help`` prints: modes, subcommands, examples, where configs live."""
    root, groups = _config_groups()
    width = max(map(len, groups), default=0)
    group_lines = "\n".join(
        textwrap.fill(
            ", ".join(c), 110, initial_indent=f"    {g:<{width}}  ", subsequent_indent=" " * (width + 6)
        )
        for g, c in groups.items()
    )
    situations = SITUATIONS.replace("\n", "\n  ")
    return f"""\
usage: wwtune [study=NAME] [mode=optimize|report|advise] [key=value ...]
       wwtune analyze PATH [options]        (see `wwtune analyze --help`)
       wwtune compare BASE NEW [options]    (see `wwtune compare --help`)
       (`python -m wwtune ...` is the same command)

Tune a PyTorch training run with Optuna, scored by the heavy-tailed spectra of the trained weights
(power-law exponent alpha of each layer); no held-out data needed.

modes (mode=...):
  optimize   default: create or resume the study and run its missing trials, then print a summary and
             write studies/<name>/best_params.yaml and studies/<name>/report.html
  report     (re)write report.html of a stored study; trains nothing
  advise     more data or more tuning? retrains the best and a typical configuration on 1/8 .. all of
             the data (the task must support params.data_fraction)

subcommands:
  analyze    per-layer spectral diagnostics of a model file or folder, no data needed
  compare    two versions of a model layer by layer: what changed, and did a layer break (--fail-on)

examples:
  wwtune study=quickstart                                  # 40 short trials on scikit-learn's digits
  wwtune study=digits_mlp sampler=random study.n_trials=10 # another study, sampler and trial count
  wwtune study=quickstart mode=report                      # rewrite the report of the stored study
  wwtune analyze model.safetensors --plot plots/           # diagnose a checkpoint

Re-running a command resumes its study; to add trials to a finished study raise study.n_trials.

score (the per-trial value a sampler optimises) and pick (the rule that chooses the returned trial):
  default: score=balanced (log10 training loss + 0.5 x band distance), pick=default (the 10% lowest
  training losses, then the fewest layers with alpha below the band). Which for which situation (mean
  held-out regret, recorded seeds 0-8 / blind seeds 9-11; docs/choosing-a-score.md):
  {situations}

configs: every key can be overridden as key=value (study.n_trials=10, score.band=[3,4]).
  shipped:  {root}
  yours:    ./conf/<group>/<name>.yaml in the working directory extends them (e.g. conf/study/mine.yaml)
  groups and their choices (pick with group=choice):
{group_lines}

options:
  -h, --help       this page
  -V, --version    wwtune's version and those of Optuna, Hydra and torch
  --cfg job        print the composed config and run nothing
  -m, --multirun   Hydra multirun (several workers: worker_id=0,1 hydra/launcher=joblib)
  --hydra-help     Hydra's own help page (all Hydra flags)
"""
