"""Constants shared by the study and CLI tests (the `project` fixture is in conftest.py)."""

#: The keys of the ``wwtune.layers`` trial attr, as the team contract states them (spelled out, not
#: imported from wwtune, so a key dropped from the code fails the tests).
LAYER_KEYS = (
    "step",
    "name",
    "alpha",
    "num_evals",
    "eligible",
    "warning",
    "status",
    "lambda_max",
    "log_norm",
    "rank_loss",
    "num_traps",
)
