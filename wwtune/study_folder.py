"""The study's folder ``<studies_dir>/<name>/``: where its files live, and each trial's stored spectra.

:func:`studies_dir` is the one resolution of ``study.studies_dir``; :func:`study_dir` checks the study
name cannot escape it. ``report.html``, ``best_params.yaml`` and ``spectra/trial<N>.npz`` (a trial's final
eigenvalues, for the report's ESD plots) are named here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wwtune.deprecation import section_of
from wwtune.diskio import atomic_write, json_safe

__all__ = [
    "SPECTRA_DIR",
    "best_params_path",
    "check_study_name",
    "read_trial_spectra",
    "report_path",
    "spectra_path",
    "studies_dir",
    "study_dir",
    "study_folder",
    "write_trial_spectra",
]

#: folder (in the study's folder) of each trial's final eigenvalues, ``trial<N>.npz``
SPECTRA_DIR = "spectra"


def studies_dir(study: Mapping[str, Any]) -> str:
    """``studies_dir`` of a ``study`` section (default ``studies``): the one place it is resolved."""
    return str(section_of(study, "study").get("studies_dir") or "studies")


#: a study name: one plain folder name (no path separator, no space, not hidden, no leading '-')
_STUDY_NAME = re.compile(r"\w[\w.-]*")


def check_study_name(study_name: Any) -> None:
    """Raise ``ValueError`` unless ``study_name`` is a plain folder name inside ``studies_dir``."""
    if not isinstance(study_name, str) or not _STUDY_NAME.fullmatch(study_name):
        raise ValueError(
            "study.name must be a plain folder name (letters, digits, '_', '-' and '.', starting with a "
            f"letter, digit or '_'; no '/', no spaces) but got {study_name!r}."
        )


def study_dir(studies_dir: str | os.PathLike[str], study_name: str) -> Path:
    """``<studies_dir>/<study_name>``; the study name may not escape the folder (:func:`check_study_name`)."""
    check_study_name(study_name)
    return Path(studies_dir) / study_name


def study_folder(study: Mapping[str, Any]) -> Path:
    """The folder of the study a ``study`` section names (``<studies_dir>/<name>``)."""
    study = section_of(study, "study")
    return study_dir(studies_dir(study), str(study["name"]))


def report_path(study: Mapping[str, Any]) -> Path:
    """``report.html`` in the folder of the study a ``study`` section names."""
    return study_folder(section_of(study, "study")) / "report.html"


def best_params_path(study: Mapping[str, Any]) -> Path:
    """``best_params.yaml`` in the folder of the study a ``study`` section names."""
    return study_folder(section_of(study, "study")) / "best_params.yaml"


def spectra_path(folder: str | os.PathLike[str], trial_number: int) -> Path:
    """Where trial ``trial_number``'s final eigenvalues are kept, in the study folder ``folder``."""
    return Path(folder) / SPECTRA_DIR / f"trial{int(trial_number)}.npz"


def write_trial_spectra(path: str | os.PathLike[str], table: pd.DataFrame) -> Path:
    """Store an ``analyze(..., keep_evals=True)`` table: each layer's eigenvalues (float32) and its scalar
    columns (``alpha``, ``xmin``, ``D``, the MP fit, ...), enough to draw its ESD plots later."""
    if "evals" not in table.columns:
        raise ValueError("write_trial_spectra needs analyze(..., keep_evals=True): the table has no 'evals'.")
    rows = [
        {k: json_safe(v) for k, v in row.items() if k != "evals" and not isinstance(v, (list, np.ndarray))}
        for row in table.to_dict("records")
    ]
    arrays = {f"evals_{i}": np.asarray(e, dtype=np.float32) for i, e in enumerate(table["evals"])}
    return atomic_write(
        path, lambda tmp: np.savez_compressed(tmp, rows=np.array(json.dumps(rows)), **arrays), ".tmp.npz"
    )


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
