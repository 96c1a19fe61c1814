"""Resuming a study (issue 14): no replayed configurations, config changes refused unless allowed, time
limits that hold while a trial runs."""

import time

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from wwtune.cli import compose, main
from wwtune.config import ConfigError
from wwtune.outcome import summary_text
from wwtune.pick import picked_trial
from wwtune.ranking import best_trial, earlier_rule_trials, ranked_trials
from wwtune.record import best_params_path
from wwtune.report import render_report
from wwtune.resume import CurrentRuleSampler, record_score_rule, score_rule
from wwtune.study import run_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


def cfg(*overrides: str) -> dict:
    return compose(["study=tiny", *overrides])


def params_of(study: optuna.Study) -> list[tuple]:
    return [tuple(sorted(t.params.items())) for t in study.trials if t.params]


def test_a_resumed_run_does_not_replay_the_first_runs_proposals(project):
    first = params_of(run_study(cfg("study.n_trials=3")))
    study = run_study(cfg("study.n_trials=6"))  # resumes: 3 more trials
    every = params_of(study)
    assert every[:3] == first
    assert not set(every[3:]) & set(first), "the resumed run re-proposed the first run's parameters"
    assert len(set(every)) == 6


def test_a_changed_config_under_the_same_name_is_refused_naming_the_keys(project):
    run_study(cfg("study.n_trials=1"))
    with pytest.raises(ConfigError, match=r"changed: objective.budget, score.band") as err:
        run_study(cfg("study.n_trials=2", "score.band=[2,3]", "objective.budget=4"))
    assert "study.allow_config_change=true" in str(err.value)
    assert main(["study=tiny", "study.n_trials=2", "score.band=[2,3]"]) == 2
    assert len(optuna.load_study(study_name="tiny", storage=_storage()).trials) == 1  # nothing ran
    study = run_study(cfg("study.n_trials=2", "score.band=[2,3]", "study.allow_config_change=true"))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert study.user_attrs["wwtune.band"] == [2.0, 3.0]
    # per-run settings (n_trials, timeouts, the override itself) are no change
    run_study(cfg("study.n_trials=3", "score.band=[2,3]", "study.trial_timeout=100"))


def test_the_same_study_by_another_path_is_no_change_and_a_refused_run_writes_nothing(project):
    """Issue 24.6: ``study.studies_dir`` says where the study lives, not what it is."""
    run_study(cfg("study.n_trials=1"))
    journal = project / "studies" / "tiny" / "journal.log"
    for where in ("studies", str(project / "studies"), "./studies/"):
        study = run_study(cfg("study.n_trials=1", f"study.studies_dir={where}"))
        assert len(study.trials) == 1
    before = journal.read_bytes()
    with pytest.raises(ConfigError, match="changed: objective.budget"):
        run_study(cfg("study.n_trials=2", "objective.budget=4"))
    assert journal.read_bytes() == before, "a refused run wrote to the journal"


def test_a_changed_search_distribution_is_refused_even_when_changes_are_allowed(project):
    run_study(cfg("study.n_trials=1"))
    with pytest.raises(ConfigError, match=r"search space of 'lr' changed"):
        run_study(
            cfg(
                "study.n_trials=2",
                "search_space.params.lr='interval(0.1, 0.5)'",
                "study.allow_config_change=true",
            )
        )


def _storage():
    from wwtune.storage import make_storage

    return make_storage({"kind": "journal"}, "tiny", "studies")


def test_trial_timeout_fails_a_hung_trial_with_the_reason_stored(project):
    start = time.monotonic()
    study = run_study(cfg("objective.task=study_tasks:hang", "study.n_trials=2", "study.trial_timeout=1"))
    assert time.monotonic() - start < 25  # the hung task gives up on its own only after 30 s per trial
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 2
    reasons = {t.user_attrs["wwtune.fail_reason"] for t in study.trials}
    assert reasons == {"timed out: ran longer than study.trial_timeout=1 s; stopped"}


@pytest.mark.parametrize(
    ("task", "says"),
    [
        ("own_alarm_reports", "timed out: ran longer than study.trial_timeout=1 s; stopped"),
        ("own_alarm_silent", "the task replaced the SIGALRM handler"),
        # stopped where the alarm lands: in its work (caught, then stopped again at its next report) or in
        # a report (stopped there): either way timed out, never run on to its end
        ("catches_base_exception", "ran longer than study.trial_timeout=1 s"),
    ],
)
def test_a_task_with_its_own_sigalrm_handler_cannot_switch_the_trial_timeout_off(project, task, says):
    """Issue 24.9: before, such a task ran past study.trial_timeout unstopped (and a task that returned
    then completed as if in time)."""
    start = time.monotonic()
    study = run_study(cfg(f"objective.task=study_tasks:{task}", "study.n_trials=1", "study.trial_timeout=1"))
    assert time.monotonic() - start < 25  # own_alarm_reports gives up on its own only after 30 s
    (trial,) = study.trials
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["wwtune.fail_reason"].startswith("timed out: ")
    assert says in trial.user_attrs["wwtune.fail_reason"]
    assert "never called reporter.report" not in trial.user_attrs["wwtune.fail_reason"]


def test_study_timeout_stops_a_running_trial_and_it_does_not_count(project):
    study = run_study(cfg("objective.task=study_tasks:hang", "study.n_trials=3", "study.timeout=2"))
    assert len(study.trials) == 1 and study.trials[0].state == TrialState.FAIL
    reason = study.trials[0].user_attrs["wwtune.fail_reason"]
    assert reason == "interrupted: study.timeout=2 s was reached during the trial"
    from wwtune.workers import counted_trials

    assert counted_trials(study.trials) == 0


@pytest.mark.parametrize("value", [0, -1, "abc", True, "1e9999", "-1e9999", "nan", "2e8"])
def test_bad_trial_timeout_is_named(project, value):
    """1e9999 is inf to YAML: before the bound, every trial then failed with OverflowError (issue 24.8)."""
    with pytest.raises(ConfigError, match="study.trial_timeout must be a positive number of seconds"):
        run_study(cfg(f"study.trial_timeout={str(value).lower()}"))


def test_a_resumed_seed_never_equals_another_workers_fresh_seed():
    """Worker 0 joining a study that already holds n trials must not sample with worker n's fresh seed
    (both were SeedSequence([seed, n]): two workers then proposed the same configurations)."""
    from wwtune.resume import resumed_seed
    from wwtune.workers import worker_seed

    for seed in (0, 1, 12345):
        fresh = {worker_seed(seed, w) for w in range(64)}
        for w in range(4):
            resumed = {resumed_seed(worker_seed(seed, w), n) for n in range(1, 64)}
            assert not resumed & fresh, (seed, w)
            assert len(resumed) == 63  # and each resume point gets its own sequence
    assert resumed_seed(7, 0) == 7  # a fresh study keeps its seed (reproducible)


def test_a_study_continued_under_another_score_rule_ranks_only_the_new_rules_trials(project):
    # the first run's band makes its values small; ranked with the new band's values they would always win
    first = run_study(cfg("study.n_trials=3", "score.band=[0.5,100]"))
    old_values = [t.value for t in first.trials]
    study = run_study(cfg("study.n_trials=6", "study.allow_config_change=true"))
    new = [t for t in study.trials if t.number >= 3]
    assert max(old_values) < min(t.value for t in new)  # the premise: an old trial would be "best"
    best = best_trial(study)
    assert best.number >= 3 and best.value == min(t.value for t in new)
    assert {t.number for t in earlier_rule_trials(study)} == {0, 1, 2}
    assert [t.number for t in ranked_trials(study)] == [3, 4, 5]
    picked = picked_trial(study)[0]  # issue 21: best_params.yaml names the pick, among the new rule's trials
    assert picked.number >= 3
    assert (
        yaml.safe_load(best_params_path(study.user_attrs["wwtune.config"]["study"]).read_text())["trial"]
        == picked.number
    )
    text = summary_text(study, cfg("study.n_trials=6", "study.allow_config_change=true"))
    assert "Scored under an earlier score rule (kept, not ranked): 3 trial(s), #0–#2" in text
    assert isinstance(study.sampler, CurrentRuleSampler)
    page = render_report(study)
    assert '<td>scored under an earlier score rule (not ranked)</td><td class="num">3</td>' in page
    # a further resume under the new rule keeps the old trials apart
    again = run_study(cfg("study.n_trials=7"))
    assert [t.number for t in ranked_trials(again)] == [3, 4, 5, 6]
    assert isinstance(again.sampler, CurrentRuleSampler)


def test_the_sampler_of_a_changed_rule_study_sees_only_the_current_rules_trials():
    seen: list[list[int]] = []

    class Spy(optuna.samplers.RandomSampler):
        def sample_independent(self, study, trial, name, dist):
            seen.append([t.number for t in study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,))])
            seen.append([t.number for t in study.get_trials(deepcopy=False)])
            return super().sample_independent(study, trial, name, dist)

    study = optuna.create_study()
    for v in (0.1, 0.2):
        study.add_trial(optuna.trial.create_trial(value=v, params={"x": v}, distributions={"x": _uniform()}))
    study.set_user_attr("wwtune.config", {"score": {"band": [0, 1]}})
    rule = score_rule({"score": {"band": [2, 3]}})
    earlier = record_score_rule(study, study.user_attrs["wwtune.config"], rule)
    assert [t.number for t in earlier] == [0, 1]  # trials from before per-trial rules: the stored config's
    study.sampler = CurrentRuleSampler(Spy(seed=0))

    def objective(t):
        t.set_user_attr("wwtune.score_rule", rule)  # as TrialRunner does when a trial starts
        return t.suggest_float("x", 0, 1)

    study.optimize(objective, n_trials=1)
    assert seen[0] == [] and seen[1] == [2]  # only the running trial of the current rule
    assert ranked_trials(study)[0].number == 2
    # the same rule as the stored config: nothing is ranked apart
    same = optuna.create_study()
    same.add_trial(optuna.trial.create_trial(value=0.1, params={"x": 0.1}, distributions={"x": _uniform()}))
    assert record_score_rule(same, {"score": {"band": [2, 3]}}, rule) == []
    assert len(ranked_trials(same)) == 1


def _uniform():
    return optuna.distributions.FloatDistribution(0, 1)
