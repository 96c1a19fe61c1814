"""Synthetic studies and spectra that follow the team contract, for the report tests (no training)."""

from __future__ import annotations

import base64
import io
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial
from PIL import Image
from scipy import stats

LAYERS = ["fc1", "fc2", "fc3", "head"]
NUM_EVALS = [784, 1024, 256, 10]  # the head has too few eigenvalues to count


def layers_attr(alphas, step=10, failed=()):
    """A ``wwtune.layers`` dict (columnar) for the given α per layer; indices in ``failed`` failed to fit."""
    alpha, warning, status = [], [], []
    for i, a in enumerate(alphas):
        if i in failed:
            alpha.append(-1.0)
            warning.append("failed")
            status.append("failed")
            continue
        alpha.append(float(a))
        warning.append("over-trained" if a < 2 else "under-trained" if a > 6 else "")
        status.append("success")
    n = len(alphas)
    return {
        "step": step,
        "name": LAYERS[:n],
        "alpha": alpha,
        "num_evals": NUM_EVALS[:n],
        "eligible": [ne >= 50 for ne in NUM_EVALS[:n]],
        "warning": warning,
        "status": status,
        "lambda_max": [10.0 + i for i in range(n)],
        "log_norm": [2.0 + 0.1 * i for i in range(n)],
        "rank_loss": [0] * n,
        "num_traps": [0] * n,
    }


def synthetic_study(
    n_trials: int = 14, seed: int = 0, with_extras: bool = True, name: str = "demo", storage=None
):
    """An in-memory study whose trials carry the contract's user attrs; pruned and failed trials included."""
    rng = np.random.default_rng(seed)
    study = optuna.create_study(study_name=name, direction="minimize", storage=storage)
    dists = {
        "lr": FloatDistribution(1e-3, 0.5, log=True),
        "opt": CategoricalDistribution(["sgd", "adam"]),
    }
    for i in range(n_trials):
        lr = float(np.exp(rng.uniform(np.log(1e-3), np.log(0.5))))
        params = {"lr": lr, "opt": "sgd" if i % 3 else "adam"}
        base = 2.0 + 1.5 * abs(np.log10(lr) + 1.5)
        alphas = [base + rng.normal(0, 0.3) for _ in LAYERS]
        score = float(np.mean([abs(a - 2.0) for a in alphas[:3]]))
        attrs = {
            "wwtune.layers": layers_attr(alphas, failed=(3,) if i % 5 == 4 else ()),
            "wwtune.budget": 10,
            "wwtune.losses": [[s, 2.0 / s] for s in range(1, 11)],
            "wwtune.time_train_s": 2.0,
            "wwtune.time_analysis_s": 0.05,
        }
        if i == 6:
            study.add_trial(
                create_trial(
                    state=TrialState.FAIL,
                    params=params,
                    distributions=dists,
                    user_attrs={"wwtune.fail_reason": "training loss became nan at step 3"},
                )
            )
            continue
        if i == 9:
            attrs["wwtune.prune_reason"] = "3/3 eligible layers have α > 6 at step 5"
            study.add_trial(
                create_trial(
                    state=TrialState.PRUNED,
                    params=params,
                    distributions=dists,
                    user_attrs=attrs,
                    intermediate_values={5: score + 1.0},
                )
            )
            continue
        attrs["wwtune.score"] = score
        attrs["wwtune.heldout"] = float(0.98 - 0.05 * score + rng.normal(0, 0.01))
        study.add_trial(
            create_trial(
                value=score,
                params=params,
                distributions=dists,
                user_attrs=attrs,
                intermediate_values={5: score + 0.3, 10: score},
            )
        )
    study.set_user_attr("wwtune.band", [2.0, 2.0])
    study.set_user_attr("wwtune.heldout_direction", "maximize")
    study.set_user_attr(
        "wwtune.config",
        {
            "objective": {
                "task": "wwtune.objectives.digits_mlp:train",
                "budget": 10,
                "fixed": {"batch_size": 64, "momentum": 0.9},
                "heldout": {"name": "accuracy", "direction": "maximize"},
            },
        },
    )
    if with_extras:
        study.set_user_attr("wwtune.trust", trust_dict(study))
        study.set_user_attr(
            "wwtune.advice",
            {
                "data_fraction": [0.125, 0.25, 0.5, 1.0],
                "score": [1.4, 0.9, 0.55, 0.4],
                "score_err": [0.1, 0.08, 0.05, 0.05],
                "tuning_headroom": 0.3,
                "metric": "α score",
                "verdict": "more data will help",
                "summary": "Doubling the data is projected to gain more than tuning.",
            },
        )
    return study


def trust_dict(study):
    """A trust report shaped like ``wwtune.trust.trust_report`` (branch pruner), from the trials."""
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    s = np.array([t.value for t in done])
    h = np.array([t.user_attrs["wwtune.heldout"] for t in done])
    rho, p_rho = stats.spearmanr(-s, h)
    tau, p_tau = stats.kendalltau(-s, h)
    ia, ib = int(np.argmin(s)), int(np.argmax(h))
    im = int(np.argmin(np.abs(h - np.median(h))))

    def entry(i):
        return {"trial": done[i].number, "score": float(s[i]), "heldout": float(h[i])}

    regret = float(h[ib] - h[ia])
    verdict = "well" if max(p_rho, p_tau) < 0.05 and rho > 0 else "inconclusive"
    return {
        "n": len(done),
        "n_excluded": 0,
        "heldout_direction": "maximize",
        "score_direction": "minimize",
        "convention": "+1 = a better α score (lower) goes with a better held-out metric (higher)",
        "spearman": float(rho),
        "spearman_p": float(p_rho),
        "kendall": float(tau),
        "kendall_p": float(p_tau),
        "alpha_best": entry(ia),
        "heldout_best": entry(ib),
        "median": {**entry(im), "heldout": float(np.median(h))},
        "regret": regret,
        "regret_vs_median": regret / float(h[ib] - np.median(h)),
        "random_regret": float(h[ib] - h.mean()),
        "verdict": verdict,
        "reason": f"p = {max(p_rho, p_tau):.3g} vs 0.05",
        "summary": f"α ranked trials {verdict} (Spearman {rho:+.2f}, Kendall {tau:+.2f}, n = {len(done)}).",
    }


def heavy_tailed_evals(alpha: float, n: int = 600, xmin: float = 1.0, bulk: int = 400, seed: int = 0):
    """Eigenvalues with a Pareto(α) tail above ``xmin`` and a uniform bulk below it, ascending."""
    rng = np.random.default_rng(seed)
    tail = xmin * (1 - rng.uniform(size=n)) ** (-1 / (alpha - 1))
    body = rng.uniform(0.01 * xmin, xmin, size=bulk)
    return np.sort(np.concatenate([body, tail]))


class PageParser(HTMLParser):
    """Collects image sources, scripts, external links, sections and their one-line explanations."""

    def __init__(self):
        super().__init__()
        self.images, self.scripts, self.urls, self.sections, self.explains = [], 0, [], [], {}
        self._section, self._in_explain, self._text = None, False, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if key in attrs and not str(attrs[key]).startswith(("data:", "#")):
                self.urls.append(attrs[key])
        if tag == "section":
            self._section = attrs.get("id")
            self.sections.append(self._section)
        if tag == "p" and attrs.get("class") == "explain":
            self._in_explain, self._text = True, []

    def handle_endtag(self, tag):
        if tag == "p" and self._in_explain:
            self.explains[self._section] = "".join(self._text).strip()
            self._in_explain = False

    def handle_data(self, data):
        if self._in_explain:
            self._text.append(data)


def parse_page(text):
    parser = PageParser()
    parser.feed(text)
    return parser


def decode_image(src):
    """Decode a ``data:`` image URI and check it is a valid PNG or SVG; returns (mime, PIL image or None)."""
    head, _, payload = src.partition(",")
    allowed = ("data:image/png;base64", "data:image/svg+xml;base64")
    assert head in allowed, f"not an embedded image: {head[:40]}"
    raw = base64.b64decode(payload, validate=True)
    if head == "data:image/png;base64":
        with Image.open(io.BytesIO(raw)) as im:
            im.verify()  # raises on a truncated or corrupt PNG
        im = Image.open(io.BytesIO(raw))
        im.load()
        assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100
        return "image/png", im
    root = ET.fromstring(raw)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(list(root.iter())) > 50  # a real drawing, not an empty canvas
    return "image/svg+xml", None
