"""The HTML study report: self-contained, complete, escaped, and readable from any storage."""

from __future__ import annotations

import html

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState, create_trial
from report_fixtures import decode_image, heavy_tailed_evals, layers_attr, parse_page, synthetic_study

from wwtune.report import render_report, write_report
from wwtune.report.html import EXPLAIN

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def study():
    return synthetic_study()


@pytest.fixture(scope="module")
def page(study, tmp_path_factory):
    path = write_report(study, tmp_path_factory.mktemp("rep") / "studies" / "demo" / "report.html")
    return path.read_text(encoding="utf-8")


def test_report_is_self_contained_with_every_section_explained(page):
    doc = parse_page(page)
    assert doc.scripts == 0 and doc.urls == []  # no JavaScript, nothing fetched from anywhere
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page
    assert doc.sections == ["summary", "params", "layers", "history", "heatmap", "trust", "advice", "trials"]
    for sid in doc.sections:
        assert len(doc.explains[sid]) > 40, f"section {sid} lacks its one-line explanation"
    # layer plot, score history, heatmap, trust scatter, advice plot
    assert len(doc.images) == 5
    for src in doc.images:
        mime, im = decode_image(src)
        assert mime == "image/png"


def test_report_holds_best_params_layer_table_trust_and_advice(study, page):
    best = study.best_trial
    assert f"Best parameters (trial #{best.number})" in page
    assert f'<td>lr</td><td class="num">{best.params["lr"]:.4g}</td>' in page
    assert "batch_size" in page  # fixed values from the stored config
    layers = best.user_attrs["wwtune.layers"]
    for name, alpha, status in zip(layers["name"], layers["alpha"], layers["status"], strict=True):
        assert f"<td>{name}</td>" in page
        assert (f"{alpha:.4g}" in page) if status == "success" else "fit failed" in page
    trust = study.user_attrs["wwtune.trust"]
    assert '<span class="badge well">α ranked trials well</span>' in page
    assert html.escape(trust["summary"]) in page
    assert f"{trust['spearman']:.4g}" in page
    assert "more data will help" in page
    assert "training loss became nan at step 3" in page  # failed trial's reason in the trials table
    assert "3/3 eligible layers have α &gt; 6 at step 5" in page  # pruned trial's reason, escaped


def test_all_study_text_is_escaped():
    evil = "<script>alert(1)</script>"
    study = optuna.create_study(study_name=f"x{evil}", direction="minimize")
    dist = {"act": CategoricalDistribution(["<b>relu</b>", "tanh"])}
    attrs = {"wwtune.layers": layers_attr([2.1, 2.4]), "wwtune.heldout": 0.9}
    attrs["wwtune.layers"]["name"] = ['fc"1', "<img src=x onerror=alert(2)>"]
    study.add_trial(
        create_trial(value=0.1, params={"act": "<b>relu</b>"}, distributions=dist, user_attrs=attrs)
    )
    study.add_trial(
        create_trial(
            state=TrialState.FAIL,
            params={"act": "tanh"},
            distributions=dist,
            user_attrs={"wwtune.fail_reason": "loss <nan> & 'worse'"},
        )
    )
    study.set_user_attr("wwtune.advice", {"verdict": "<i>data</i>", "note": "<u>x</u>"})
    study.set_user_attr("wwtune.trust", {"verdict": '"><script>', "summary": "<b>s</b>", "n": 1})
    page = render_report(study)
    doc = parse_page(page)
    assert doc.scripts == 0 and doc.urls == []
    for raw in (
        evil,
        "<b>relu</b>",
        "<img src=x",
        "loss <nan>",
        "<i>data</i>",
        "<u>x</u>",
        '"><script>',
        "<b>s</b>",
    ):
        assert raw not in page
    for text in (
        "&lt;b&gt;relu&lt;/b&gt;",
        "loss &lt;nan&gt; &amp; &#39;worse&#39;",  # Jinja2's autoescape (markupsafe) spells ' and " so
        "fc&#34;1",
        "&lt;img src=x onerror=alert(2)&gt;",
    ):
        assert text in page
    assert len(doc.images) >= 3


def test_report_from_a_journal_file_storage(tmp_path):
    path = tmp_path / "journal.log"
    storage = JournalStorage(JournalFileBackend(str(path)))
    synthetic_study(n_trials=6, storage=storage)
    storage = JournalStorage(JournalFileBackend(str(path)))  # re-open: read back from the file only
    loaded = optuna.load_study(study_name="demo", storage=storage)
    out = write_report(loaded, tmp_path / "report.html")
    page = out.read_text(encoding="utf-8")
    assert "wwtune report: demo" in page and '<td>completed</td><td class="num">6</td>' in page
    for src in parse_page(page).images:
        decode_image(src)


def test_empty_study_and_missing_extras_say_what_is_missing():
    page = render_report(optuna.create_study(study_name="empty"))
    doc = parse_page(page)
    assert "No trial has completed yet" in page
    assert doc.sections == ["summary", "history", "heatmap", "trust"]
    assert doc.explains["trust"] == EXPLAIN["no_trust"]
    assert "give your task a held-out metric" in html.unescape(page)
    plain = synthetic_study(n_trials=5, with_extras=False)
    doc = parse_page(render_report(plain))
    assert "advice" not in doc.sections
    assert doc.explains["trust"] == EXPLAIN["trust"]  # held-out values exist: trust measured for the page
    page = render_report(plain)
    assert "Trust report computed for this page" in page and '<span class="badge' in page


def test_svg_images_and_layer_spectra(study):
    evals = [heavy_tailed_evals(a, seed=i) for i, a in enumerate([2.2, 3.1])]
    spectra = pd.DataFrame(
        {
            "name": ["fc1", "fc2"],
            "alpha": [2.2, 3.1],
            "xmin": [1.0, 1.0],
            "D": [0.05, 0.06],
            "evals": evals,
            "sigma_mp": [1.0, np.nan],
            "Q": [1.5, 2.0],
        }
    )
    page = render_report(study, spectra=spectra, image_format="svg", band=(2, 3))
    doc = parse_page(page)
    assert "spectra" in doc.sections
    assert len(doc.images) == 5 + 4  # 2 log-log + 2 linear ESDs
    assert all(decode_image(src)[0] == "image/svg+xml" for src in doc.images)
    assert "2 ≤ α ≤ 3" in page  # the band in words ('target' row of the summary)


def test_bad_arguments_are_named(study):
    with pytest.raises(TypeError, match="optuna.Study but got list"):
        render_report([])
    with pytest.raises(ValueError, match="image_format must be 'png' or 'svg' but got 'jpg'"):
        render_report(study, image_format="jpg")
    with pytest.raises(ValueError, match="keep_evals=True"):
        render_report(study, spectra=pd.DataFrame({"name": ["a"], "alpha": [2.0]}))
    with pytest.raises(ValueError, match="low <= high"):
        render_report(study, band=(4, 3))


def test_screenshot_helper_names_bad_input(tmp_path):
    from wwtune.report.browser import screenshot

    with pytest.raises(FileNotFoundError, match="No page to render"):
        screenshot(tmp_path / "missing.html", tmp_path / "x.png")
    (tmp_path / "p.html").write_text("<p>x</p>")
    with pytest.raises(ValueError, match="width and height must be positive but got 0"):
        screenshot(tmp_path / "p.html", tmp_path / "x.png", width=0)
    with pytest.raises(RuntimeError, match="wrote no screenshot"):
        screenshot(tmp_path / "p.html", tmp_path / "x.png", chromium="/bin/true")


def test_multi_objective_study_renders_without_a_best_trial():
    study = optuna.create_study(study_name="mo", directions=["minimize", "maximize"])
    study.add_trial(create_trial(values=[0.2, 0.9], user_attrs={"wwtune.layers": layers_attr([2.2, 2.9])}))
    page = render_report(study)
    assert "A multi-objective study has no single best trial." in page
    for src in parse_page(page).images:
        decode_image(src)


def test_layer_table_shows_distance_to_band_and_shades_only_off_target_layers():
    from wwtune.report.html import _layer_table

    df = pd.DataFrame(
        {"name": ["fc1", "fc2"], "alpha": [1.994, 1.5], "warning": ["over-trained", "over-trained"]}
    )
    table = _layer_table(df, (2.0, 2.0))  # the table's data; report.html.j2 draws it
    rows = [(r["classes"], [c["text"] for c in r["cells"]]) for r in table["rows"]]
    # issue 21: an on-target layer reads as the α plot's legend says, not "over-trained"
    assert rows[0][0] == "" and "-0.01" in rows[0][1] and "on target (within 0.1 of the band)" in rows[0][1]
    assert rows[1][0] == "over-trained" and "-0.50" in rows[1][1]
    assert "distance to band" in table["head"]


def test_pareto_study_report_plots_the_front_and_marks_the_pick():
    study = optuna.create_study(study_name="po", directions=["minimize", "minimize"])
    study.set_user_attr("wwtune.score_kind", "pareto")
    for loss, b in [(0.1, 0.5), (0.2, 0.1), (0.3, 0.3), (0.05, 1.0)]:
        study.add_trial(create_trial(values=[loss, b], user_attrs={"wwtune.layers": layers_attr([2.2, 2.9])}))
    page = render_report(study)
    assert "Pareto front: fit against spectra" in page and "picked trial (Pareto front)" in page
    from wwtune.report.study_plots import plot_pareto_front

    fig = plot_pareto_front(study, 1)
    gids = {c.get_gid() for c in fig.axes[0].collections} | {ln.get_gid() for ln in fig.axes[0].lines}
    assert {"trials", "front", "pick"} <= gids
    front = next(ln for ln in fig.axes[0].lines if ln.get_gid() == "front")
    assert list(front.get_xdata()) == [0.05, 0.1, 0.2]  # (0.3, 0.3) is dominated by (0.2, 0.1)


def test_report_comes_from_the_shipped_jinja2_template_and_a_user_template_replaces_it(study, tmp_path):
    from importlib import resources

    shipped = resources.files("wwtune.report") / "templates" / "report.html.j2"
    assert shipped.is_file()  # package data: the template ships with the package
    mine = tmp_path / "mine.html.j2"
    mine.write_text(
        shipped.read_text(encoding="utf-8").replace("<main>", "<main><p id='house'>{{ study_name }}</p>")
    )
    study.set_user_attr("unused", 1)
    page = write_report(study, tmp_path / "r.html", template=mine).read_text(encoding="utf-8")
    assert f"<p id='house'>{html.escape(study.study_name)}</p>" in page
    assert parse_page(page).sections[:2] == ["summary", "params"]
    with pytest.raises(FileNotFoundError, match="report template not found: 'nope.j2'"):
        render_report(study, template="nope.j2")


def test_a_user_template_is_autoescaped_too(tmp_path):
    s = optuna.create_study(study_name="<b>x</b>")
    t = tmp_path / "t.html.j2"
    t.write_text("{{ study_name }}")
    assert render_report(s, template=t) == "&lt;b&gt;x&lt;/b&gt;\n"
