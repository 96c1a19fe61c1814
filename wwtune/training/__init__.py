"""In-training use of the spectra: torch objects a training loop calls once per epoch (``step()``).

- :class:`TempBalance`: per-layer learning-rate factors from each layer's α, composed with any scheduler;
  :func:`param_groups_per_layer` builds the one-group-per-layer optimizer it needs.
- :class:`EarlyFreezing`: freezes layers front to back once their α has stopped moving.

Knows ``wwtune.spectral`` and torch only (no Optuna); the framework callbacks are in
``wwtune.integrations.lightning_training`` and ``wwtune.integrations.huggingface_training``.
"""

from wwtune.training.freezing import EarlyFreezing
from wwtune.training.layers import layer_alphas
from wwtune.training.tempbalance import MAPS, TempBalance, balance_factors, param_groups_per_layer

__all__ = [
    "MAPS",
    "EarlyFreezing",
    "TempBalance",
    "balance_factors",
    "layer_alphas",
    "param_groups_per_layer",
]
