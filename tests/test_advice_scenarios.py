"""Reduced validation scenarios of benchmarks/bench_advice.py: the cross-fitted advisor must answer right.

Each test trains a teacher–student scenario (``conf/objective/teacher_student_{starved,untuned}.yaml``)
on half its data, like the bench, but compares the scenario's own untuned configuration (the one a user
would have, as the current best) with two alternatives instead of running a 12-trial study. The advisor
never sees the held-out set (``n_heldout`` is cut to 100 to save time).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from wwtune.advice import Candidate, advise
from wwtune.objectives.teacher_student import train

CONF = Path(__file__).resolve().parents[1] / "conf"


def _scenario(name: str) -> dict:
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / "objective" / f"teacher_student_{name}.yaml"))
    return {"budget": int(cfg["budget"]), "fixed": {**cfg["fixed"], "n_heldout": 100}}


def _advise(name: str, alternatives: list[dict]) -> dict:
    torch.set_num_threads(1)
    scen = _scenario(name)
    cands = [Candidate("defaults", {})] + [Candidate(f"alt {i}", v) for i, v in enumerate(alternatives)]
    return advise(train, candidates=cands, fixed=scen["fixed"], budget=scen["budget"], available_fraction=0.5)


@pytest.mark.slow
def test_reduced_data_starved_scenario_says_more_data():
    adv = _advise("starved", [{"lr": 0.02}, {"weight_decay": 1e-3}])
    assert adv["method"] == "cross-fitted learning curve"
    assert adv["verdict"] == "more data", adv["reason"]


@pytest.mark.slow
def test_reduced_badly_tuned_scenario_says_more_tuning():
    adv = _advise("untuned", [{"lr": 0.01}, {"lr": 0.005}])
    assert adv["method"] == "cross-fitted learning curve"
    assert adv["verdict"] == "more tuning", adv["reason"]
