"""One self-contained ``report.html`` per study: summary, best parameters, layers, plots, trust, advice.

The page embeds every figure as a base64 ``data:`` URI, carries its own CSS, loads nothing from the
network and needs no JavaScript. Each section opens with one plain-language sentence for a reader who has
never heard of α. The functions here gather each section's content as plain data (blocks: key-value
tables, tables, images, notes); the Jinja2 template ``templates/report.html.j2`` (shipped in the package)
turns them into HTML with autoescaping, so all text that comes from the study (names, parameters,
reasons, advice) is HTML-escaped. ``template=`` takes a user's own copy of that template.
"""

from __future__ import annotations

import datetime as _dt
import functools
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import optuna
import pandas as pd
from markupsafe import Markup
from matplotlib.figure import Figure
from optuna.trial import FrozenTrial, TrialState

from wwtune.outcome import band_distance_text
from wwtune.pick import STUDY_PICK, picked_trial
from wwtune.ranking import earlier_rule_trials, ranked_trials
from wwtune.record import (
    STUDY_ADVICE,
    STUDY_CONFIG,
    STUDY_HELDOUT_DIRECTION,
    STUDY_HELDOUT_NAME,
    STUDY_TRUST,
    TrialRecord,
    atomic_write_text,
    fit_failed,
)
from wwtune.report.advice_plot import plot_advice
from wwtune.report.cells import cell, num, text, trust_items
from wwtune.report.data import layers_frame, resolve_band, trials_table
from wwtune.report.plots import (
    figure_data_uri,
    plot_esd,
    plot_esd_linear,
    plot_layer_alphas,
)
from wwtune.report.plots import (
    on_target as plot_on_target,
)
from wwtune.report.study_plots import (
    plot_alpha_heatmap,
    plot_pareto_front,
    plot_score_history,
    plot_trust_scatter,
)
from wwtune.report.texts import CSS as _CSS
from wwtune.report.texts import EXPLAIN
from wwtune.report.training_plots import training_section
from wwtune.schema import SCHEMA
from wwtune.score import Score, band_text
from wwtune.trust import trust_report
from wwtune.version import __version__

__all__ = ["render_report", "write_report"]

logger = logging.getLogger(__name__)

#: Columns of the per-layer table, in display order, with their plain-language headers.
LAYER_COLUMNS = {
    "name": "layer",
    "alpha": "α",
    "to_band": "distance to band",
    "warning": "warning",
    "eligible": "counted in score",
    "num_evals": "eigenvalues",
    "lambda_max": "largest eigenvalue",
    "log_norm": "log₁₀ ‖W‖²",
    "rank_loss": "rank loss",
    "num_traps": "correlation traps",
    "status": "fit",
}
#: Most per-layer ESD figures embedded when ``spectra`` is given (the rest are listed, not drawn).
MAX_ESD_LAYERS = 12
#: Most trials listed in the trials table (best by score first beyond that).
MAX_TRIAL_ROWS = 300
#: The report's template, shipped in the package (``wwtune/report/templates/``).
TEMPLATE = "report.html.j2"

Block = dict[str, Any]
Section = dict[str, Any]


# ---------------------------------------------------------------------------------------------- helpers
def _kv_table(items: Sequence[tuple[str, Any]]) -> Block:
    return {"kind": "kv", "items": [(text(k), cell(v)) for k, v in items]}


def _note(text: str) -> Block:
    return {"kind": "note", "text": text}


def _img(fig: Figure, alt: str, fmt: str) -> Block:
    uri = figure_data_uri(fig, fmt)
    fig.clear()
    return {"kind": "img", "uri": uri, "alt": alt}


def _section(sid: str, title: str, explain: str, blocks: list[Block]) -> list[Section]:
    return [{"id": sid, "title": title, "explain": explain, "blocks": blocks}]


def _config_get(config: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(config, Mapping):
            return None
        config = config.get(k)
    return config


# ---------------------------------------------------------------------------------------------- sections
def _summary(study: optuna.Study, best: FrozenTrial | None, band: tuple[float, float]) -> list[Section]:
    table = trials_table(study)
    counts = table["state"].value_counts().to_dict() if len(table) else {}
    config = study.user_attrs.get(STUDY_CONFIG)
    items: list[tuple[str, Any]] = [
        ("study", study.study_name),
        ("trials", len(table)),
        ("completed", counts.get("COMPLETE", 0)),
        ("pruned (stopped early)", counts.get("PRUNED", 0)),
        ("failed", counts.get("FAIL", 0)),
    ]
    if counts.get("RUNNING"):
        items.append(("still running", counts["RUNNING"]))
    earlier = earlier_rule_trials(study)
    if earlier:  # study.allow_config_change under another score: shown in the plots, never ranked
        items.append(("scored under an earlier score rule (not ranked)", len(earlier)))
    task = _config_get(config, "objective", "task")
    if task:
        items.append(("training task", task))
    budget = TrialRecord(best).budget if best else _config_get(config, "objective", "budget")
    if budget is not None:
        items.append(("training budget per trial", budget))
    items.append(("target", band_text(band)))
    if len(study.directions) == 1:
        items.append(("direction", study.direction.name.lower()))
    items.append(("score rule", score_words(study)))
    pick = study.user_attrs.get(STUDY_PICK)
    if isinstance(pick, Mapping) and pick.get("number") is not None:
        items += [("returned trial (the pick)", f"#{pick['number']}"), ("pick rule", pick.get("rule"))]
        items.append(("why this trial", pick.get("reason")))
    if best is not None and len(best.values) > 1:
        items += [
            ("picked trial (Pareto front)", f"#{best.number}"),
            ("its final training loss", best.values[0]),
            ("its band distance B", best.values[1]),
        ]
    elif best is not None:
        items += [("returned trial's score", best.value)]
        heldout = TrialRecord(best).heldout
        if heldout is not None:
            items.append(("held-out metric of the returned trial", heldout))
    train = table["time_train_s"].dropna().sum() if len(table) else 0.0
    analysis = table["time_analysis_s"].dropna().sum() if len(table) else 0.0
    if train > 0:
        items.append(("training time, all trials (s)", float(train)))
        items.append(("spectral analysis time (s)", float(analysis)))
        items.append(("analysis share of the time", f"{100 * analysis / (train + analysis):.1f} %"))
    body = [_kv_table(items)]
    if best is None and len(study.directions) > 1:
        body.append(_note("A multi-objective study has no single best trial."))
    elif best is None:
        body.append(_note("No trial has completed yet, so there is no best trial."))
    return _section("summary", "Summary", EXPLAIN["summary"], body)


def _params(study: optuna.Study, best: FrozenTrial | None) -> list[Section]:
    if best is None:
        return []
    body = (
        [_kv_table(sorted(best.params.items()))]
        if best.params
        else [{"kind": "p", "text": "No searched parameters."}]
    )
    fixed = _config_get(study.user_attrs.get(STUDY_CONFIG), "objective", "fixed")
    if isinstance(fixed, Mapping) and fixed:
        body += [_note("Fixed (not searched):"), _kv_table(sorted(fixed.items()))]
    return _section("params", f"Best parameters (trial #{best.number})", EXPLAIN["params"], body)


def _layer_table(df: pd.DataFrame, band: tuple[float, float] = (2.0, 2.0)) -> Block:
    """The per-layer table; a row is shaded over/under-trained only when α is off the band by > ON_TARGET."""
    if "alpha" in df.columns:
        df = df.assign(to_band=[band_distance_text(a, band) for a in df["alpha"]])
    cols = [c for c in LAYER_COLUMNS if c in df.columns]
    head = [LAYER_COLUMNS[c] for c in cols]
    rows = []
    for _, r in df.iterrows():
        classes = []
        warning = r.get("warning")
        alpha = r.get("alpha")
        on_target = _isnum(alpha) and plot_on_target(float(alpha), band)
        if isinstance(warning, str) and warning and not (on_target and warning != "failed"):
            classes.append(warning)
        elif isinstance(warning, str) and warning and warning != "failed":  # as the plot's legend says
            r = r.copy()
            r["warning"] = "on target (within 0.1 of the band)"
        if "eligible" in df.columns and not bool(r["eligible"]):
            classes.append("ineligible")
        cells = []
        for c in cols:
            v = r[c]
            if c == "alpha" and fit_failed(v, r.get("status")):
                v = "fit failed"
            cells.append(cell(v))
        rows.append({"classes": " ".join(classes), "cells": cells})
    return {"kind": "table", "head": head, "rows": rows}


def score_words(study: optuna.Study, short: bool = False) -> str:
    """The study's per-trial value in the summary's words (``Score.describe``); ``short``: its name."""
    config = study.user_attrs.get(STUDY_CONFIG)
    node = _config_get(config, "score")
    if not isinstance(node, Mapping):
        return "score"
    try:
        score = Score.from_config({k: v for k, v in node.items() if k in SCHEMA["score"]})
    except (ValueError, TypeError):
        return str(node.get("kind", "score"))
    if not short:
        return score.describe()
    names = {"band_distance": "α score (distance to the band)", "train_loss": "training loss",
             "heldout": "held-out metric", "pareto": "band distance B",
             "fit_band": f"score: log10(training loss) + {score.weight:g} × band distance"}  # fmt: skip
    return names.get(score.kind, f"{score.kind} score")


def _isnum(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _layers(best: FrozenTrial | None, band: tuple[float, float], fmt: str) -> list[Section]:
    if best is None:
        return []
    df = layers_frame(best)
    if df is None or df.empty:
        body = [{"kind": "p", "text": "The best trial stored no per-layer diagnostics."}]
    else:
        step = df.attrs.get("step")
        body = (
            [
                _note(
                    f"Measured at step {step}, the run's last analysis (a step is one report of the "
                    "training task: an epoch in the bundled tasks)."
                )
            ]
            if step is not None
            else []
        )
        fig = plot_layer_alphas(df, band, title=f"α per layer, returned trial #{best.number} (the pick)")
        body += [
            _img(fig, "α per layer of the returned trial against the target band", fmt),
            _layer_table(df, band),
        ]
    return _section("layers", "Layers of the returned trial (the pick)", EXPLAIN["layers"], body)


def _history(study: optuna.Study, band: tuple[float, float], fmt: str) -> list[Section]:
    label = score_words(study, short=True)
    body = [_img(plot_score_history(study, score_label=label), "score of each trial and best so far", fmt)]
    hist = _section("history", "Score history", EXPLAIN["history"], body)
    heat = [_img(plot_alpha_heatmap(study, band=band), "α of each layer in each trial", fmt)]
    return hist + _section("heatmap", "α across trials and layers", EXPLAIN["heatmap"], heat)


def _pareto(study: optuna.Study, best: FrozenTrial | None, fmt: str) -> list[Section]:
    if len(study.directions) != 2:
        return []
    fig = plot_pareto_front(study, None if best is None else best.number)
    body = [_img(fig, "Pareto front: training loss against band distance, the pick marked", fmt)]
    return _section("pareto", "Pareto front: fit against spectra", EXPLAIN["pareto"], body)


def _trust(study: optuna.Study, fmt: str) -> list[Section]:
    trust = study.user_attrs.get(STUDY_TRUST)
    heldout_direction = study.user_attrs.get(STUDY_HELDOUT_DIRECTION, "maximize")
    if heldout_direction not in ("minimize", "maximize"):
        heldout_direction = "maximize"
    has_heldout = any(
        t.state == TrialState.COMPLETE and TrialRecord(t).heldout is not None
        for t in study.get_trials(deepcopy=False)
    )
    if not isinstance(trust, Mapping) and not has_heldout:
        return _section("trust", "Can the α score be trusted here?", EXPLAIN["no_trust"], [])
    body: list[Block] = []
    if not isinstance(trust, Mapping) and len(study.directions) == 1:
        # The study stored no trust report (e.g. the run was interrupted): measure it now, the same way.
        trust = trust_report(
            ranked_trials(study), heldout_direction, score_direction=study.direction.name.lower()
        )
        body.append(_note("Trust report computed for this page from the stored trials."))
    if isinstance(trust, Mapping):
        verdict = str(trust.get("verdict", "inconclusive"))
        labels = {"well": "α ranked trials well", "poorly": "α ranked trials poorly"}
        label = {**labels, "mixed": "α ranked trials, but its pick was poor"}.get(verdict, verdict)
        body.append(
            {"kind": "badge", "verdict": verdict, "label": label, "text": text(trust.get("summary", ""))}
        )
        table = [_kv_table(trust_items(trust))]
    else:
        table = []
    name = (
        study.user_attrs.get(STUDY_HELDOUT_NAME)
        or _config_get(study.user_attrs.get(STUDY_CONFIG), "objective", "heldout", "name")
        or "held-out metric"
    )
    pick = study.user_attrs.get(STUDY_PICK)
    fig = plot_trust_scatter(
        study,
        trust=trust if isinstance(trust, Mapping) else None,
        heldout_name=str(name),
        heldout_direction=heldout_direction,
        score_label=score_words(study, short=True),
        pick=pick.get("number") if isinstance(pick, Mapping) else None,
    )
    scatter = _img(fig, "α score against held-out metric per trial", fmt)
    body.append({"kind": "row", "blocks": [scatter, {"kind": "div", "blocks": table}]})
    return _section("trust", "Can the α score be trusted here?", EXPLAIN["trust"], body)


def _advice(study: optuna.Study, fmt: str) -> list[Section]:
    advice = study.user_attrs.get(STUDY_ADVICE)
    if not isinstance(advice, Mapping):
        return []
    body: list[Block] = []
    for key in ("verdict", "summary", "explanation"):
        if isinstance(advice.get(key), str):
            body.append({"kind": "strong" if key == "verdict" else "p", "text": advice[key]})
    if "data_fraction" in advice and "score" in advice:
        try:
            body.append(_img(plot_advice(advice), "score against fraction of the training data", fmt))
        except (TypeError, ValueError) as err:  # a malformed advice dict must not lose the whole report
            logger.warning("advice plot skipped: %s", err)
            body.append(_note(f"Advice plot skipped: {err}"))
    scalars = [
        (k, v)
        for k, v in advice.items()
        if k not in ("verdict", "summary", "explanation") and (v is None or isinstance(v, (str, int, float)))
    ]
    if scalars:
        body.append(_kv_table(scalars))
    return _section("advice", "More data or more tuning?", EXPLAIN["advice"], body)


def _spectra(spectra: pd.DataFrame | None, fmt: str) -> list[Section]:
    if spectra is None:
        return []
    if "evals" not in spectra.columns:
        raise ValueError("spectra must come from analyze(..., keep_evals=True): it has no 'evals' column.")
    imgs = []
    for _, row in spectra.head(MAX_ESD_LAYERS).iterrows():
        evals = np.asarray(row["evals"], dtype=float)
        label = row["longname"] if "longname" in row else row["name"]
        if np.count_nonzero(evals > 1e-5):
            imgs.append(_img(plot_esd(evals, row), f"log-log spectrum of {label}", fmt))
        if "sigma_mp" in spectra.columns:
            imgs.append(_img(plot_esd_linear(evals, row), f"linear spectrum of {label}", fmt))
    more = len(spectra) - MAX_ESD_LAYERS
    note = [_note(f"{more} more layer(s) not drawn.")] if more > 0 else []
    return _section(
        "spectra",
        "Layer spectra of the best model",
        EXPLAIN["spectra"],
        [{"kind": "grid", "blocks": imgs}, *note],
    )


def _trials(study: optuna.Study) -> list[Section]:
    table = trials_table(study)
    if table.empty:
        return []
    params = {t.number: t.params for t in study.get_trials(deepcopy=False)}
    shown = table
    note: list[Block] = []
    if len(table) > MAX_TRIAL_ROWS:
        shown = table.sort_values("score", na_position="last").head(MAX_TRIAL_ROWS).sort_values("number")
        note = [_note(f"Showing the {MAX_TRIAL_ROWS} best-scoring of {len(table)} trials.")]
    has_heldout = table["heldout"].notna().any()
    head = ["trial", "state", "score", *(["held-out"] if has_heldout else []), "parameters", "note"]
    rows = []
    for r in shown.itertuples(index=False):
        p = ", ".join(
            f"{k}={num(v) if _isnum(v) else v}" for k, v in sorted(params.get(r.number, {}).items())
        )
        reason = next((x for x in (r.fail_reason, r.prune_reason) if isinstance(x, str) and x), "")
        cells = [cell(f"#{r.number}"), cell(r.state.lower()), cell(r.score)]
        if has_heldout:
            cells.append(cell(r.heldout))
        cells += [cell(p), cell(reason)]
        rows.append({"classes": None, "cells": cells})
    return _section(
        "trials", "All trials", EXPLAIN["trials"], [*note, {"kind": "table", "head": head, "rows": rows}]
    )


@functools.lru_cache(maxsize=8)
def _template(path: str | None) -> jinja2.Template:
    """The shipped template (``path`` None) or a user's template file, with HTML autoescaping on."""
    if path is None:
        loader: jinja2.BaseLoader = jinja2.PackageLoader("wwtune.report", "templates")
        name = TEMPLATE
    else:
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"report template not found: {path!r}")
        loader, name = jinja2.FileSystemLoader(str(file.parent)), file.name
    env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    return env.get_template(name)


# ---------------------------------------------------------------------------------------------- public
def render_report(
    study: optuna.Study,
    *,
    spectra: pd.DataFrame | None = None,
    band: Sequence[float] | None = None,
    image_format: str = "png",
    template: str | os.PathLike[str] | None = None,
) -> str:
    """The study report as one HTML string (see :func:`write_report`)."""
    if not isinstance(study, optuna.Study):
        raise TypeError(f"study must be an optuna.Study but got {type(study).__name__}.")
    if image_format not in ("png", "svg"):
        raise ValueError(f"image_format must be 'png' or 'svg' but got {image_format!r}.")
    band_ = resolve_band(study, band)
    best, _ = picked_trial(study)  # the summary's and best_params.yaml's trial: the study's pick rule
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    # each entry of `sections` is one group: two sections side by side (class "pair") or one
    sections = [
        _summary(study, best, band_) + _params(study, best),
        *(
            [s]
            for s in _layers(best, band_, image_format)
            + _history(study, band_, image_format)
            + _pareto(study, best, image_format)
            + _trust(study, image_format)
            + _advice(study, image_format)
            + _spectra(spectra, image_format)
        ),
        # issue 22's section comes rendered (escaped there): passed through as it is
        *([Markup(training)] if (training := training_section(study.trials, best, image_format)) else []),  # noqa: S704
        *([s] for s in _trials(study)),
    ]
    page = _template(None if template is None else os.fspath(template)).render(
        study_name=study.study_name,
        css=Markup(_CSS),  # noqa: S704 - wwtune's own stylesheet (a constant), not study text
        intro=EXPLAIN["intro"],
        sections=sections,
        generated=when,
        version=__version__,
    )
    return page + "\n"


def write_report(
    study: optuna.Study,
    out_path: str | Path,
    *,
    spectra: pd.DataFrame | None = None,
    band: Sequence[float] | None = None,
    image_format: str = "png",
    template: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the self-contained HTML report of ``study`` to ``out_path`` and return the path.

    Args:
        study: an Optuna study from any storage (journal file, SQLite, PostgreSQL, in memory); reads the
            trial and study user attrs of the wwtune contract (``wwtune.layers``, ``wwtune.score``,
            ``wwtune.heldout``, ``wwtune.trust``, ``wwtune.advice``, …) and shows what is present.
        out_path: the ``.html`` file to write (conventionally ``studies/<name>/report.html``); parent
            folders are created.
        spectra: optional ``analyze(best_model, keep_evals=True)`` result; adds per-layer ESD plots
            (at most :data:`MAX_ESD_LAYERS`). Default: none.
        band: target α band ``[low, high]``; default the study's ``wwtune.band``, else ``[2, 2]``.
        image_format: ``"png"`` (default) or ``"svg"`` for the embedded figures.
        template: a Jinja2 template file to use instead of the shipped ``templates/report.html.j2`` (start
            from a copy of it; the context it gets is described in ``docs/report-template.md``).

    Example::

        import optuna
        from wwtune.report import write_report

        study = optuna.create_study(study_name="demo")
        study.optimize(lambda trial: (trial.suggest_float("x", -1, 1) - 0.3) ** 2, n_trials=5)
        write_report(study, "studies/demo/report.html")
        # a stored study: write_report(optuna.load_study(study_name=..., storage=...), path)
    """
    text = render_report(study, spectra=spectra, band=band, image_format=image_format, template=template)
    # whole file under a unique name, then renamed: several workers finishing together never interleave
    out = atomic_write_text(out_path, text)
    logger.info("wrote study report %s (%d kB)", out, len(text) // 1024)
    return out
