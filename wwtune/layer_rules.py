"""The per-layer table a layer rule reads, and the divergence rule shared by the pruner and the bridge.

:class:`LayerTable` is one analysis (the ``wwtune.layers`` user attr), checked and aligned;
:func:`diverged_reason` is the ``"diverged"`` rule: :class:`wwtune.pruners.AlphaPruner` applies it at each
report and :class:`wwtune.bridge.StudyReporter` at the end of every trial (the sanity check).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wwtune.record import LAYERS as LAYERS_ATTR
from wwtune.record import fit_failed

__all__ = ["LayerTable", "chosen_layers", "diverged_reason"]


@dataclass(frozen=True)
class LayerTable:
    """The per-layer diagnostics of one analysis, checked and aligned (one entry per layer).

    Numbers that are missing (``None``) are kept as ``None``; ``num_traps`` is all ``None`` when traps
    were not computed.
    """

    step: int | None
    name: list[str]
    alpha: list[float | None]
    num_evals: list[int | None]
    eligible: list[bool]
    status: list[str]
    lambda_max: list[float | None]
    log_norm: list[float | None]
    rank_loss: list[float | None]
    num_traps: list[int | None]

    @classmethod
    def from_attr(cls, value: Any) -> LayerTable:
        """Build a table from the ``wwtune.layers`` user attr; raise ``ValueError`` if it is malformed."""
        if not isinstance(value, Mapping):
            raise ValueError(
                f"The {LAYERS_ATTR!r} user attr must be a dict of columns but got {type(value).__name__}."
            )
        if "name" not in value or "alpha" not in value:
            raise ValueError(
                f"The {LAYERS_ATTR!r} user attr needs at least the columns 'name' and 'alpha' but has "
                f"{sorted(value)}."
            )
        n = len(value["name"])

        def column(key: str, default: Any = None) -> list[Any]:
            col = value.get(key)
            if col is None:
                return [default] * n
            if len(col) != n:
                raise ValueError(
                    f"Column {key!r} of the {LAYERS_ATTR!r} user attr has {len(col)} entries but "
                    f"'name' has {n}."
                )
            return list(col)

        step = value.get("step")
        return cls(
            step=None if step is None else int(step),
            name=[str(x) for x in value["name"]],
            alpha=[_as_float(x) for x in column("alpha")],
            num_evals=[None if x is None else int(x) for x in column("num_evals")],
            eligible=[bool(x) for x in column("eligible", True)],
            status=["success" if x is None else str(x) for x in column("status", "success")],
            lambda_max=[_as_float(x) for x in column("lambda_max")],
            log_norm=[_as_float(x) for x in column("log_norm")],
            rank_loss=[_as_float(x) for x in column("rank_loss")],
            num_traps=[None if x is None else int(x) for x in column("num_traps")],
        )

    def fit_ok(self, i: int) -> bool:
        """Whether layer ``i`` has a usable power-law fit (:func:`wwtune.record.fit_failed`: a failed fit,
        α = −1, is not a small α)."""
        return not fit_failed(self.alpha[i], self.status[i])


def _as_float(x: Any) -> float | None:
    # JSON has no NaN/Inf in every backend: a None stands for "not a number" here.
    return None if x is None else float(x)


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _not_finite(x: float | None) -> bool:
    # None means "not reported", which is not evidence of divergence.
    return x is not None and not math.isfinite(x)


def diverged_reason(
    losses: Any,
    table: LayerTable | None,
    first: LayerTable | None,
    diverged_alpha: float = 2.0,
    norm_growth: float = 100.0,
) -> dict[str, Any] | None:
    """The ``"diverged"`` rule (see :class:`AlphaPruner`), also used by the study's sanity check at the end
    of every trial: a non-finite loss in ``losses`` (``[[step, loss], ...]``), non-finite norms in
    ``table``, or an eligible layer with α below ``diverged_alpha`` whose spectral or Frobenius norm grew
    by more than ``norm_growth`` times since ``first``. Returns the reason dict, or None."""
    for entry in losses:
        loss = _as_float(entry[1])
        if not _finite(loss):
            return {
                "rule": "diverged",
                "cause": "non_finite_loss",
                "layers": [],
                "alpha": [],
                "message": f"training loss became {loss} at step {entry[0]}.",
            }
    if table is None or first is None:
        return None

    blown = [
        i
        for i in range(len(table.name))
        if _not_finite(table.lambda_max[i]) or _not_finite(table.log_norm[i])
    ]
    if blown:
        return {
            "rule": "diverged",
            "cause": "non_finite_norms",
            **chosen_layers(table, blown),
            "message": "non-finite norms in "
            + ", ".join(
                f"{table.name[i]} (lambda_max={table.lambda_max[i]}, log_norm={table.log_norm[i]})"
                for i in blown
            )
            + ".",
        }

    first_by_name = {name: i for i, name in enumerate(first.name)}
    exploded, growths = [], []
    for i, name in enumerate(table.name):
        j = first_by_name.get(name)
        if j is None or not table.eligible[i] or not table.fit_ok(i):
            continue
        if table.alpha[i] >= diverged_alpha:  # type: ignore[operator]
            continue
        growth = _growth(table, i, first, j)
        if growth is not None and growth > norm_growth:
            exploded.append(i)
            growths.append(growth)
    if not exploded:
        return None
    return {
        "rule": "diverged",
        "cause": "small_alpha_and_norm_growth",
        **chosen_layers(table, exploded),
        "growth": growths,
        "bound": diverged_alpha,
        "threshold": norm_growth,
        "message": "α below "
        + f"{diverged_alpha:g} with exploding norms (growth since step {first.step}) in "
        + ", ".join(
            f"{table.name[i]} (α={table.alpha[i]:.3g}, ×{g:.3g})"
            for i, g in zip(exploded, growths, strict=True)
        )
        + f"; more than ×{norm_growth:g} counts as exploding.",
    }


def _growth(table: LayerTable, i: int, first: LayerTable, j: int) -> float | None:
    """The larger of the spectral-norm and Frobenius-norm growth factors of a layer, if known."""
    factors = []
    now, then = table.lambda_max[i], first.lambda_max[j]
    if now is not None and then is not None and then > 0.0:
        factors.append(now / then)
    now, then = table.log_norm[i], first.log_norm[j]
    if now is not None and then is not None:
        factors.append(10.0 ** min(now - then, 300.0))
    return max(factors) if factors else None


def chosen_layers(table: LayerTable, idx: list[int]) -> dict[str, Any]:
    """The ``layers`` and ``alpha`` entries of a reason dict for the layers ``idx`` of ``table``."""
    return {"layers": [table.name[i] for i in idx], "alpha": [table.alpha[i] for i in idx]}
