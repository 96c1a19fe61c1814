"""Turn one model's per-layer spectral diagnostics into the single number a study optimises.

The default objective is a **distance to a target band** of the power-law exponent α, averaged over the
eligible layers (evidence: "smallest α wins" picks diverged runs; "α closest to 2" nearly matches
validation-based selection). Never "minimise α".

Per-layer term of ``band_distance`` for a band ``[lo, hi]`` with centre ``c = (lo + hi) / 2``::

    term(α) = max(lo - α, 0, α - hi) + tie_break * |α - c|

The second part is the deterministic tie-break: inside the band the distance is 0 for every α, so the
sampler would see no signal; the small pull toward the centre keeps the term strictly increasing in
``|α - c|`` everywhere (continuous across the band edges), so the ordering outside the band is unchanged.

Rules shared by all α-based kinds:

* **Eligibility**: only layers with ``num_evals >= min_evals`` (default 50) count. The others are kept in
  the stored table with ``eligible = False``.
* **Failed fits** (:func:`wwtune.spectral.fit_rule.failed_fits`: status not ``success``, α = -1, α ≤ 1 or
  non-finite): the layer contributes
  ``failed_penalty`` instead of its α term — it is never read as a small α.
* **Weights**: ``uniform`` (each eligible layer counts once, the default) or ``num_evals`` (a layer counts
  in proportion to its number of eigenvalues, so wide layers dominate).

Kinds (``conf/score/<name>.yaml``): ``band_distance``, ``mean_alpha`` (weighted mean α,
minimised; for comparison with the literature), ``mean_alpha_weighted`` (mean α̂ = α·log10 λ_max,
minimised; the authors recommend plain α for hyperparameter sweeps at fixed architecture) and ``heldout``
(the task's held-out metric, for baselines; its direction comes from the objective config), and the
kinds that combine how well the run **fitted** (its final reported training loss ``L``) with what its
spectra say about that fit (``B``, the ``band_distance`` above with the same band and rules):

* ``train_loss``: ``L`` alone (the baseline every user already has, as a score).
* ``fit_band``: ``log10(max(L, loss_floor)) + weight * B + trap_weight * T`` where ``T`` is the fraction of
  eligible layers with a correlation trap (0 unless the analysis looks for traps, ``randomize: true``).
  Rationale: the log makes the loss part scale-free (a run whose loss is 10x lower gains 1, whatever the
  task's loss units), and ``B`` counts layers below the band (α < lo: over-trained, memorised) and above
  it (under-trained) against a low loss. The value depends on the trial alone — no rank, no running
  quantile of the other trials — so the signal a single-objective sampler sees for a run never changes
  as the study grows.
* ``pareto``: two objectives ``(L, B)``, both minimised; Optuna keeps the Pareto front and
  :func:`pareto_pick` chooses one trial from it (rule there).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import yaml

from wwtune.deprecation import moved
from wwtune.diskio import json_safe
from wwtune.schema import SCHEMA, ConfigError, normalize_config
from wwtune.spectral.fit_rule import failed_fits

__all__ = [
    "KINDS",
    "WEIGHTS",
    "Score",
    "ScoreResult",
    "band_text",
    "layers_record",
]

#: names that moved to their home; importing them from here still works, with a DeprecationWarning
_MOVED = ("pareto_front", "pareto_pick")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        from wwtune import ranking  # lazy: only old code asks (the pick rule's home reads no score)

        return moved(__name__, name, ranking)
    raise AttributeError(f"module 'wwtune.score' has no attribute {name!r}")


KINDS = ("band_distance", "mean_alpha", "mean_alpha_weighted", "heldout", "train_loss", "fit_band", "pareto")
#: kinds whose value includes the final training loss
FIT_KINDS = ("train_loss", "fit_band", "pareto")
#: the band when neither the score nor the task names one (MLP/CNN layers)
DEFAULT_BAND = (2.0, 2.0)
WEIGHTS = ("uniform", "num_evals")
DIRECTIONS = ("minimize", "maximize")

#: Default per-layer value substituted for a failed fit, by kind (in the score's own units).
_DEFAULT_FAILED_PENALTY = {
    "band_distance": 4.0,
    "mean_alpha": 8.0,
    "mean_alpha_weighted": 8.0,
    "heldout": 0.0,
    "train_loss": 4.0,
    "fit_band": 4.0,
    "pareto": 4.0,
}


@dataclass(frozen=True)
class ScoreResult:
    """The outcome of scoring one analysis.

    ``value`` is ``None`` when the model cannot be scored (then ``reason`` says why): no eligible layer,
    a ``heldout`` score without a held-out value, or a fit kind without a finite training loss. For
    ``pareto``, ``values`` holds both objectives ``(L, B)`` and ``value`` is ``B``; otherwise
    ``values == (value,)``.
    """

    value: float | None
    n_layers: int
    n_eligible: int
    n_failed: int
    reason: str | None = None
    values: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.values is None and self.value is not None:
            object.__setattr__(self, "values", (self.value,))


class Score:
    """The study objective computed from ``wwtune.analyze`` output (lower is better for α kinds).

    Example:

        .. code-block:: python

            import pandas as pd
            from wwtune.score import Score

            layers = pd.DataFrame({"name": ["fc1", "fc2"], "alpha": [2.5, 1.5], "num_evals": [64, 64],
                                   "status": ["success", "success"]})
            result = Score(band=(2.0, 2.0), tie_break=0.0)(layers)
            assert result.value == 0.5

    Args:
        kind: one of :data:`KINDS` (default ``band_distance``).
        band: ``(lo, hi)`` target band of α for ``band_distance`` and the fit kinds; ``None`` or default:
            ``(2, 2)`` (MLP/CNN). Use ``(3, 4)`` for transformers. ``lo`` must not exceed ``hi``. In a study
            a score config without a band takes the task's (``objective.alpha_band``).
        min_evals: a layer is eligible only with at least this many eigenvalues; default 50.
        weights: ``uniform`` (default) or ``num_evals``; how eligible layers are averaged.
        failed_penalty: per-layer value used for a failed fit, in the score's units; default 4.0 for
            ``band_distance`` (as far as α = 6 is from 2) and 8.0 for the mean-α kinds. Cannot be negative.
        tie_break: weight of the pull toward the band centre, default 0.01; 0 disables it. Cannot be
            negative.
        heldout_direction: ``maximize`` (default) or ``minimize``; the direction of a ``heldout`` score.
        weight: ``fit_band`` only: weight of the band distance ``B`` against ``log10`` of the training
            loss; default 5.0 (chosen on the calibration seeds, ``benchmarks/results/selectors.md``).
            Must be a finite number ≥ 0.
        trap_weight: ``fit_band`` only: weight of the fraction of eligible layers with a correlation trap;
            default 0.5. Finite, ≥ 0.
        loss_floor: fit kinds: the training loss is clipped below at this positive value before its
            log is taken (a loss of exactly 0 is not −∞); default 1e-6.
        fit_quantile: ``pareto`` only: the pick considers only trials whose training loss is at most
            this quantile of the study's losses (a run that did not fit, relative to the others, is never
            picked for its α); in (0, 1], default 1.0 (no gate).
    """

    def __init__(
        self,
        kind: str = "band_distance",
        band: Sequence[float] | None = None,
        min_evals: int = 50,
        weights: str = "uniform",
        failed_penalty: float | None = None,
        tie_break: float = 0.01,
        heldout_direction: str = "maximize",
        weight: float = 5.0,
        trap_weight: float = 0.5,
        loss_floor: float = 1e-6,
        fit_quantile: float = 1.0,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"Score kind must be one of {list(KINDS)} but got {kind!r}.")
        if band is None:
            band = DEFAULT_BAND
        if isinstance(band, np.ndarray):
            band = band.tolist()
        if (
            isinstance(band, (str, bytes))
            or not isinstance(band, Sequence)
            or len(band) != 2
            or not all(_is_number(b) and math.isfinite(b) for b in band)
        ):
            raise ValueError(f"band must be two finite numbers [lo, hi] but got {band!r}.")
        band = tuple(float(b) for b in band)
        if band[0] > band[1]:
            raise ValueError(f"band lower edge cannot exceed the upper edge but got {list(band)!r}.")
        if not _is_number(min_evals) or int(min_evals) != min_evals or min_evals < 1:
            raise ValueError(f"min_evals must be a positive integer but got {min_evals!r}.")
        for name, value in (
            ("failed_penalty", failed_penalty),
            ("tie_break", tie_break),
            ("weight", weight),
            ("trap_weight", trap_weight),
            ("loss_floor", loss_floor),
            ("fit_quantile", fit_quantile),
        ):
            if value is not None and not _is_number(value):
                raise ValueError(f"{name} must be a number but got {value!r}.")
        for name, value in (("weight", weight), ("trap_weight", trap_weight)):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0 but got {value!r}.")
        if not math.isfinite(loss_floor) or loss_floor <= 0:
            raise ValueError(f"loss_floor must be a positive number but got {loss_floor!r}.")
        if not 0.0 < fit_quantile <= 1.0:
            raise ValueError(f"fit_quantile must be in (0, 1] but got {fit_quantile!r}.")
        if weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {list(WEIGHTS)} but got {weights!r}.")
        if failed_penalty is None:
            failed_penalty = _DEFAULT_FAILED_PENALTY[kind]
        if not math.isfinite(failed_penalty) or failed_penalty < 0:
            raise ValueError(f"failed_penalty cannot be negative or non-finite but got {failed_penalty!r}.")
        if not math.isfinite(tie_break) or tie_break < 0:
            raise ValueError(f"tie_break cannot be negative or non-finite but got {tie_break!r}.")
        if heldout_direction not in DIRECTIONS:
            raise ValueError(
                f"heldout_direction must be one of {list(DIRECTIONS)} but got {heldout_direction!r}."
            )
        self.kind = kind
        self.band = band
        self.min_evals = int(min_evals)
        self.weights = weights
        self.failed_penalty = float(failed_penalty)
        self.tie_break = float(tie_break)
        self.heldout_direction = heldout_direction
        self.weight = float(weight)
        self.trap_weight = float(trap_weight)
        self.loss_floor = float(loss_floor)
        self.fit_quantile = float(fit_quantile)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], heldout_direction: str | None = None) -> Score:
        """Build from a ``conf/score`` mapping (keys of :data:`wwtune.schema.SCHEMA` ``["score"]``: those of
        ``__init__``, with ``min_evals`` spelled ``min_evals_counted``)."""
        cfg = normalize_config({"score": cfg})["score"]  # score.min_evals: the deprecated name
        allowed = set(SCHEMA["score"])
        unknown = sorted(set(cfg) - allowed)
        if unknown:
            raise ValueError(f"Unknown score setting(s) {unknown}; allowed: {sorted(allowed)}.")
        kwargs = dict(cfg)
        if "min_evals_counted" in kwargs:
            kwargs["min_evals"] = kwargs.pop("min_evals_counted")
        if heldout_direction is not None:
            kwargs["heldout_direction"] = heldout_direction
        return cls(**kwargs)

    @property
    def direction(self) -> str:
        """The Optuna study direction this score needs (the first one for ``pareto``)."""
        return self.heldout_direction if self.kind == "heldout" else "minimize"

    @property
    def directions(self) -> list[str]:
        """The Optuna study directions: two for ``pareto`` (training loss, band distance), else one."""
        return ["minimize", "minimize"] if self.kind == "pareto" else [self.direction]

    @property
    def multi_objective(self) -> bool:
        return self.kind == "pareto"

    @property
    def uses_alpha(self) -> bool:
        """Whether the score is computed from the spectra alone (then it is the stored α score too)."""
        return self.kind not in ("heldout", *FIT_KINDS)

    @property
    def uses_train_loss(self) -> bool:
        return self.kind in FIT_KINDS

    def alpha_score(self) -> Score:
        """The α score stored with every trial (``wwtune.score``, read by the trust report and the
        advisor): this score itself when it is spectral only, else ``band_distance`` with its band and
        layer rules."""
        if self.uses_alpha:
            return self
        return Score(
            band=self.band,
            min_evals=self.min_evals,
            weights=self.weights,
            failed_penalty=self.failed_penalty if self.kind != "heldout" else None,
            tie_break=self.tie_break,
        )

    def describe(self) -> str:
        """One line stating the rule, for logs and summaries."""
        if self.kind == "heldout":
            return f"score = held-out metric ({self.heldout_direction})"
        if self.kind == "train_loss":
            return "score = final training loss (lower is better; no spectra)"
        if self.kind in ("fit_band", "pareto"):
            band = self.alpha_score().describe().removeprefix("score = ").split("; lower")[0]
            if self.kind == "pareto":
                gate = ""
                if self.fit_quantile < 1:
                    gate = f"; pick gated to losses <= the {self.fit_quantile:g} quantile"
                return (
                    "scores = (final training loss L, B), both minimised (Pareto front); pick: the front "
                    f"trial with the smallest sum of the two ranks{gate}; B = {band}"
                )
            traps = f" + {self.trap_weight:g} x trapped-layer fraction" if self.trap_weight else ""
            return (
                f"score = log10(final training loss) + {self.weight:g} x B{traps}; B = {band};"
                " lower is better"
            )
        lo, hi = self.band
        band_rule = (
            f"distance of alpha to {lo:g}"
            if lo == hi
            else f"distance of alpha to the band [{lo:g}, {hi:g}]"
            f" (+{self.tie_break:g} x distance to its centre)"
        )
        rule = {
            "band_distance": band_rule,
            "mean_alpha": "mean alpha",
            "mean_alpha_weighted": "mean alpha_hat (alpha * log10 lambda_max)",
        }[self.kind]
        return (
            f"score = {self.weights}-weighted {rule} over eligible layers (num_evals >= {self.min_evals});"
            f" failed fits count {self.failed_penalty:g}; lower is better"
        )

    def eligible(self, num_evals: Sequence[float] | np.ndarray) -> np.ndarray:
        """Boolean mask of layers with at least ``min_evals`` eigenvalues."""
        return np.asarray(num_evals, dtype=float) >= self.min_evals

    def layer_terms(
        self, alpha: np.ndarray, failed: np.ndarray, alpha_hat: np.ndarray | None = None
    ) -> np.ndarray:
        """Per-layer contribution (before weighting): the kind's term, ``failed_penalty`` for failed fits."""
        alpha = np.asarray(alpha, dtype=float)
        if self.kind in ("band_distance", *FIT_KINDS):
            lo, hi = self.band
            safe = np.where(failed, 0.5 * (lo + hi), alpha)
            outside = np.maximum(np.maximum(lo - safe, 0.0), safe - hi)
            terms = outside + self.tie_break * np.abs(safe - 0.5 * (lo + hi))
        elif self.kind == "mean_alpha":
            terms = alpha.copy()
        elif self.kind == "mean_alpha_weighted":
            if alpha_hat is None:
                raise ValueError("mean_alpha_weighted needs the 'alpha_weighted' column of wwtune.analyze.")
            terms = np.asarray(alpha_hat, dtype=float).copy()
            failed = failed | ~np.isfinite(terms)
        else:
            raise ValueError("layer_terms is not defined for the heldout score.")
        return np.where(failed, self.failed_penalty, terms)

    def __call__(
        self, layers: pd.DataFrame | None, heldout: float | None = None, train_loss: float | None = None
    ) -> ScoreResult:
        """Score one analysis (``wwtune.analyze`` DataFrame).

        ``heldout`` is used only by ``heldout``; ``train_loss`` (the final reported training loss) only by
        the fit kinds (``train_loss``, ``fit_band``, ``pareto``).
        """
        n_layers = 0 if layers is None else len(layers)
        if self.kind == "heldout":
            if heldout is None or not math.isfinite(float(heldout)):
                return ScoreResult(
                    None,
                    n_layers,
                    0,
                    0,
                    "score=heldout needs the task to return a finite "
                    f"{{'heldout': value}} but got {heldout!r}",
                )
            return ScoreResult(float(heldout), n_layers, 0, 0)
        if self.uses_train_loss and (train_loss is None or not math.isfinite(float(train_loss))):
            return ScoreResult(
                None, n_layers, 0, 0, f"score={self.kind} needs a finite training loss but got {train_loss!r}"
            )
        if self.kind == "train_loss":
            return ScoreResult(float(train_loss), n_layers, 0, 0)
        spectral = self._spectral(layers)
        if self.kind not in FIT_KINDS or spectral.value is None:
            return spectral
        loss = float(train_loss)
        if self.kind == "pareto":
            return ScoreResult(
                spectral.value,
                spectral.n_layers,
                spectral.n_eligible,
                spectral.n_failed,
                values=(loss, spectral.value),
            )
        value = math.log10(max(loss, self.loss_floor)) + self.weight * spectral.value
        if self.trap_weight:
            value += self.trap_weight * self.trapped_fraction(layers)
        return ScoreResult(value, spectral.n_layers, spectral.n_eligible, spectral.n_failed)

    def trapped_fraction(self, layers: pd.DataFrame | None) -> float:
        """Fraction of eligible layers with at least one correlation trap (0 when traps were not sought)."""
        if layers is None or "num_traps" not in layers.columns or not len(layers):
            return 0.0
        eligible = self.eligible(layers["num_evals"].to_numpy())
        traps = pd.to_numeric(layers["num_traps"], errors="coerce").to_numpy(dtype=float)[eligible]
        return float(np.mean(np.nan_to_num(traps) > 0)) if eligible.any() else 0.0

    def _spectral(self, layers: pd.DataFrame | None) -> ScoreResult:
        n_layers = 0 if layers is None else len(layers)
        if layers is None or n_layers == 0:
            return ScoreResult(None, 0, 0, 0, "the analysis found no layer with a weight matrix")
        for column in ("alpha", "num_evals"):
            if column not in layers.columns:
                raise ValueError(f"Layer table lacks the {column!r} column; got {list(layers.columns)}.")
        eligible = self.eligible(layers["num_evals"].to_numpy())
        if not eligible.any():
            sizes = sorted(int(n) for n in layers["num_evals"])
            return ScoreResult(
                None,
                n_layers,
                0,
                0,
                f"no layer has num_evals >= min_evals={self.min_evals}"
                f" (eigenvalue counts: {sizes}); lower score.min_evals or widen the model",
            )
        alpha = layers["alpha"].to_numpy(dtype=float)[eligible]
        failed = failed_fits(layers)[eligible]
        alpha_hat = None
        if self.kind == "mean_alpha_weighted":
            if "alpha_weighted" not in layers.columns:
                raise ValueError("mean_alpha_weighted needs the 'alpha_weighted' column of wwtune.analyze.")
            alpha_hat = layers["alpha_weighted"].to_numpy(dtype=float)[eligible]
        terms = self.layer_terms(alpha, failed, alpha_hat)
        if self.weights == "num_evals":
            w = layers["num_evals"].to_numpy(dtype=float)[eligible]
        else:
            w = np.ones_like(terms)
        value = float(np.sum(w * terms) / np.sum(w))
        return ScoreResult(value, n_layers, int(eligible.sum()), int(failed.sum()))


def band_text(band: Sequence[float]) -> str:
    """The target band in words: ``α = 2`` for a one-point band, ``3 ≤ α ≤ 4`` otherwise."""
    lo, hi = float(band[0]), float(band[1])
    return f"α = {lo:g}" if lo == hi else f"{lo:g} ≤ α ≤ {hi:g}"


def _is_number(value: object) -> bool:
    numeric = isinstance(value, (int, float, np.integer, np.floating))
    return numeric and not isinstance(value, (bool, np.bool_))


def layers_record(layers: pd.DataFrame, score: Score, step: int) -> dict[str, Any]:
    """The columnar, JSON-serialisable per-layer table stored as :data:`LAYERS`.

    Keys: ``step, name, alpha, num_evals, eligible, warning, status, lambda_max, log_norm, rank_loss,
    num_traps`` (``num_traps`` is ``None`` when the analysis did not look for traps).
    """
    record: dict[str, Any] = {"step": int(step)}
    eligible = score.eligible(layers["num_evals"].to_numpy()) if len(layers) else np.zeros(0, bool)
    label = "longname" if "longname" in layers.columns else "name"  # the full path: unique per layer
    record["name"] = (
        [str(n) for n in layers[label]] if label in layers.columns else [str(i) for i in range(len(layers))]
    )
    for column in ("alpha", "num_evals"):
        record[column] = [json_safe(v) for v in layers[column]]
    record["eligible"] = [bool(e) for e in eligible]
    for column in ("warning", "status", "lambda_max", "log_norm", "rank_loss"):
        present = column in layers.columns
        record[column] = [json_safe(v) for v in layers[column]] if present else [None] * len(layers)
    record["num_traps"] = (
        [json_safe(v) for v in layers["num_traps"]] if "num_traps" in layers.columns else None
    )
    return record


def default_score_name() -> str:
    """The CLI's default score config (the ``score`` entry of ``conf/config.yaml``'s defaults list)."""
    root = resources.files("wwtune.conf")
    for entry in yaml.safe_load((root / "config.yaml").read_text())["defaults"]:
        if isinstance(entry, Mapping) and "score" in entry:
            return str(entry["score"])
    raise ConfigError("conf/config.yaml names no default score")  # a broken install


def named_score(name: str | Score | None = None, band: Any = None) -> Score:
    """A :class:`Score` from a shipped ``conf/score/<name>.yaml`` (``"fit_band"``, ``"band"``,
    ``"balanced"`` …); None: the CLI's default score; a :class:`Score` is returned as is. ``band``
    fills a config without its own band (else the Score default, [2, 2])."""
    if isinstance(name, Score):
        return name
    name = default_score_name() if name is None else name
    path = resources.files("wwtune.conf") / "score" / f"{name}.yaml"
    if not isinstance(name, str) or not path.is_file():
        folder = resources.files("wwtune.conf") / "score"
        shipped = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
        raise ValueError(f"score must be a Score or one of {shipped} but got {name!r}.")
    node = dict(yaml.safe_load(path.read_text()))
    if node.get("band") is None:
        node["band"] = band
    return Score.from_config(node)
