"""wwtune inside other training frameworks, each in its own optional module (imported only when used).

* :mod:`wwtune.integrations.lightning`: ``WWTuneCallback`` for a ``lightning`` Trainer
  (``pip install 'wwtune[lightning]'``).
* :mod:`wwtune.integrations.huggingface`: ``WWTuneCallback`` and ``compute_objective`` for a
  ``transformers`` Trainer and its ``hyperparameter_search(backend="optuna")``
  (``pip install 'wwtune[huggingface]'``).

Both go through :class:`wwtune.TrialBridge`, the same per-report step and trial record as the CLI.
"""
