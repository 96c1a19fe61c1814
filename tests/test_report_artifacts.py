"""Figures attached to trials and studies as Optuna artifacts (what optuna-dashboard displays)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.artifacts import FileSystemArtifactStore, download_artifact, get_all_artifact_meta
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from PIL import Image
from report_fixtures import layers_attr

from wwtune.report import attach_figures, plot_layer_alphas

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_figures_attach_to_a_running_trial_and_to_the_study(tmp_path):
    (tmp_path / "artifacts").mkdir()
    store = FileSystemArtifactStore(tmp_path / "artifacts")
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    study = optuna.create_study(study_name="s", storage=storage)
    trial = study.ask()
    fig = plot_layer_alphas(layers_attr([2.1, 3.4, 7.0]), (2, 2))
    ids = attach_figures(trial, {"layer alphas/best": fig}, store, formats=("png", "svg"))
    assert sorted(ids) == ["layer_alphas_best.png", "layer_alphas_best.svg"]
    study.tell(trial, 0.5)
    ids_study = attach_figures(study, {"summary": fig}, store)
    # read back through a fresh storage: the links live in the journal, the files in the store
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    loaded = optuna.load_study(study_name="s", storage=storage)
    metas = get_all_artifact_meta(loaded.trials[0], storage=storage)
    assert {(m.filename, m.artifact_id, m.mimetype) for m in metas} == {
        ("layer_alphas_best.png", ids["layer_alphas_best.png"], "image/png"),
        ("layer_alphas_best.svg", ids["layer_alphas_best.svg"], "image/svg+xml"),
    }
    assert [m.artifact_id for m in get_all_artifact_meta(loaded)] == [ids_study["summary.png"]]
    out = tmp_path / "back.png"
    download_artifact(artifact_store=store, file_path=str(out), artifact_id=ids["layer_alphas_best.png"])
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 100


def test_attach_figures_rejects_bad_arguments(tmp_path):
    store = FileSystemArtifactStore(tmp_path)
    study = optuna.create_study()
    frozen = optuna.trial.create_trial(value=1.0)
    fig = plot_layer_alphas({"name": ["a"], "alpha": [2.0]}, (2, 2))
    with pytest.raises(ValueError, match="storage is required"):
        attach_figures(frozen, {"a": fig}, store)
    with pytest.raises(TypeError, match="but got str"):
        attach_figures("trial", {"a": fig}, store)
    with pytest.raises(TypeError, match="Figures"):
        attach_figures(study, {"a": "not a figure"}, store)
    with pytest.raises(ValueError, match="formats must be"):
        attach_figures(study, {"a": fig}, store, formats=("gif",))


def _examples():
    import inspect
    import textwrap

    import wwtune.report as rep

    for name in rep.__all__:
        doc = inspect.getdoc(getattr(rep, name)) or ""
        if "Example::" in doc:
            block = doc.split("Example::", 1)[1]
            lines = []
            for line in block.splitlines()[1:]:
                if line.strip() and not line.startswith("    "):
                    break
                lines.append(line)
            yield pytest.param(name, textwrap.dedent("\n".join(lines)), id=name)


#: What each docstring example of wwtune.report leaves behind (its namespace, the folder it ran in); a new
#: example needs its line here.
EXAMPLE_RESULTS = {
    "attach_figures": lambda ns, d: any(p.is_file() for p in (d / "artifacts").rglob("*")),
    "plot_esd": lambda ns, d: (
        (d / "esd_first_layer.png").stat().st_size > 0 and (d / "esd_first_layer.svg").stat().st_size > 0
    ),
    "plot_esd_linear": lambda ns, d: any(ln.get_gid() == "mp_density" for ln in ns["fig"].axes[0].lines),
    "save_model_plots": lambda ns, d: bool(ns["paths"]) and all(Path(p).stat().st_size for p in ns["paths"]),
    "write_report": lambda ns, d: "<html" in (d / "studies" / "demo" / "report.html").read_text(),
}


@pytest.mark.parametrize(("name", "code"), list(_examples()))
def test_docstring_examples_run(name, code, tmp_path, monkeypatch):
    import torch

    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "<example>", "exec"), namespace)
    assert EXAMPLE_RESULTS[name](namespace, tmp_path), f"the {name} example did not produce its result"
