"""The ``--fail-on`` rules of ``wwtune compare`` over a :func:`wwtune.compare` result (its ``events`` column
and threshold columns)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import pandas as pd

__all__ = ["DEFAULT_FAIL_ON", "RULES", "check_rules", "parse_rules"]

#: The rules of ``check_rules`` / ``wwtune compare --fail-on``: name -> what fires it.
RULES = {
    "crossed": "α was inside the band and left it",
    "under-trained": "became under-trained (α > 6)",
    "over-trained": "became over-trained (α < 2)",
    "failed": "the new fit failed where the base's succeeded",
    "new-trap": "more correlation traps than the base (needs randomize)",
    "rank-collapse": "≥ 10 % of the eigenvalues newly lost to the noise floor",
    "removed": "a layer of the base is missing from the new model",
    "added": "a layer only in the new model",
    "reshaped": "same name, different shape",
    "changed": "any layer not unchanged",
    "alpha-shift>X": "|Δα| > X",
    "esd>X": "esd_distance (log-scale Wasserstein distance between the ESDs, decades) > X",
    "ks>X": "KS distance between the ESDs > X",
    "frob>X": "relative Frobenius change ‖W_new − W_base‖ / ‖W_base‖ > X",
    "spectral-norm>X": "|relative change of the spectral norm| > X",
    "norm>X": "|Δ log10 Σλ| > X: the squared Frobenius norm moved by more than a factor 10^X",
}
#: The default of ``wwtune compare --fail-on``: structural or spectral breakage, not a light fine-tune.
DEFAULT_FAIL_ON = "crossed,failed,rank-collapse,esd>0.05,norm>0.1,removed,reshaped"
_THRESHOLD_RULES = {
    "alpha-shift": "delta_alpha",
    "esd": "esd_distance",
    "ks": "esd_ks",
    "frob": "rel_frobenius_change",
    "norm": "delta_log_norm",
    "spectral-norm": "spectral_norm_change",
}

# -------------------------------------------------------------------------------------------------- rules
_RULE_RE = re.compile(r"^(?P<name>[a-z-]+)(?:>(?P<value>[0-9.eE+-]+))?$")


def parse_rules(text: str | Sequence[str]) -> list[tuple[str, float | None]]:
    """``"crossed,alpha-shift>0.5"`` → ``[("crossed", None), ("alpha-shift", 0.5)]`` (see :data:`RULES`).

    Raises:
        ValueError: an unknown rule or a missing / bad threshold, naming it and listing the allowed rules.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[tuple[str, float | None]] = []
    allowed = ", ".join(RULES)
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        m = _RULE_RE.match(item)
        name = m["name"] if m else item
        if m is None or (name not in RULES and name not in _THRESHOLD_RULES):
            raise ValueError(f"unknown --fail-on rule {item!r}; allowed: {allowed}.")
        if name in _THRESHOLD_RULES:
            try:
                value = float(m["value"]) if m["value"] is not None else None
            except ValueError:
                value = None
            if value is None or not math.isfinite(value) or value < 0:
                raise ValueError(f"rule {item!r} needs a threshold ≥ 0, e.g. {name}>0.5.")
            out.append((name, value))
        else:
            if m["value"] is not None:
                raise ValueError(f"rule {name!r} takes no threshold but got {item!r}.")
            out.append((name, None))
    return out


def check_rules(df: pd.DataFrame, rules: str | Sequence[str] = DEFAULT_FAIL_ON) -> pd.Series:
    """Which ``rules`` fire on each row of a :func:`compare` result: a Series of comma-joined rule names
    ("" where none fires), aligned with ``df``; ``rules`` defaults to :data:`DEFAULT_FAIL_ON`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> a = nn.Linear(64, 32)
        >>> b = nn.Linear(64, 32)  # another random init: a different layer
        >>> from wwtune import compare
        >>> df = compare(a, b)
        >>> check_rules(df, "ks>0.99").tolist(), check_rules(df, "changed").tolist()
        ([''], ['changed'])
    """
    parsed = parse_rules(rules)
    if "events" not in df.columns:
        raise ValueError("check_rules() needs the DataFrame returned by compare() (no 'events' column).")
    fired = []
    for _, rec in df.iterrows():
        codes = set(str(rec["events"]).split(","))
        hits = []
        for name, value in parsed:
            if value is not None:
                x = rec[_THRESHOLD_RULES[name]]
                if pd.notna(x) and abs(float(x)) > value:
                    hits.append(f"{name}>{value:g}")
            elif name == "changed":
                if "unchanged" not in codes:
                    hits.append(name)
            elif name in codes:
                hits.append(name)
        fired.append(",".join(hits))
    return pd.Series(fired, index=df.index, dtype=object)
