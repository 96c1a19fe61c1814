"""Default Hydra configs shipped with wwtune (found as pkg://wwtune.conf)."""
