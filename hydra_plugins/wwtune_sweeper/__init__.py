"""``hydra/sweeper=wwtune``: tune a user's own ``@hydra.main`` app with Optuna (see docs/hydra-sweeper.md)."""
