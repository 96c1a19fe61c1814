"""Data-free layer diagnostics (pure: torch, numpy, scipy, pandas; no Optuna, no Hydra).

Contract used by the rest of wwtune (implementation lands with the spectral-engine issue):

    analyze(source, *, layers=None, layer_types=None, min_evals=..., max_evals=..., fit="power_law",
            mp_fit=False, randomize=False, seed=0, device="auto", dtype="float64",
            keep_evals=False) -> pandas.DataFrame

``source`` is an nn.Module, a state_dict, a checkpoint file or a Hugging Face folder. One row per
analyzed layer; columns documented in ``wwtune.spectral.columns.COLUMNS``; always present:
``name, layer_type, N, M, Q, rf, num_evals, alpha, xmin, xmax, D, sigma, num_pl_spikes,
alpha_weighted, log_norm, log_spectral_norm, log_alpha_norm, stable_rank, entropy, matrix_rank,
rank_loss, weak_rank_loss, lambda_max, status, warning``. ``status`` is "success" or "failed"
(alpha = -1 then); ``warning`` is "", "over-trained", "under-trained" or "failed".
With ``keep_evals=True`` an ``evals`` column holds each layer's eigenvalues (float64, ascending).

    summary(df) -> dict   # model-level means (WeightWatcher's get_summary)
"""

from wwtune.spectral.analyze import analyze
from wwtune.spectral.columns import COLUMNS
from wwtune.spectral.metrics import summary

__all__ = ["COLUMNS", "analyze", "summary"]
