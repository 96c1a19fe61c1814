"""Data-free layer diagnostics (pure: torch, numpy, scipy, pandas; no Optuna, no Hydra).

Contract used by the rest of wwtune:

    analyze(source, options=None, /, **changes) -> pandas.DataFrame

    options: AnalysisOptions(layers=None, layer_types=None, min_evals=8, max_evals=20_000,
             fit="power_law", mp_fit=False, randomize=False, seed=0, device="auto", dtype="float64",
             keep_evals=False), validated once; ``changes`` are the same fields by name.

``source`` is an nn.Module, a state_dict, a checkpoint file or a Hugging Face folder. One row per
analyzed layer; columns documented in ``wwtune.spectral.columns.COLUMNS``; always present:
``name, layer_type, N, M, Q, rf, num_evals, alpha, xmin, xmax, D, sigma, num_pl_spikes,
alpha_weighted, log_norm, log_spectral_norm, log_alpha_norm, stable_rank, entropy, matrix_rank,
rank_loss, weak_rank_loss, lambda_max, status, warning`` (and ``norm, spectral_norm, sv_max,
fail_reason, sv_min, has_esd``); ``name`` is WeightWatcher's short name, ``longname`` the full path;
WeightWatcher's other analyze() arguments are taken or refused (``wwtune.spectral.ww_args``).
``status`` is "success" or "failed" (alpha = -1 then, the other fit columns NaN, and
``fail_reason`` says why: NaN/Inf weights, a (near-)zero or rank-1 matrix, a degenerate fit);
``warning`` is "", "over-trained", "under-trained" or "failed".
``mp_fit=True`` adds ``num_spikes, sigma_mp, mp_softrank, bulk_max, bulk_min, W_scale``;
``randomize=True`` adds ``num_traps, rand_distance, max_rand_eval, rand_bulk_max, rand_sigma_mp``
(both are NaN on failed rows). With ``keep_evals=True`` an ``evals`` column holds each layer's
eigenvalues (float64, ascending; None on rows whose weights were not finite).
Bad input raises TypeError / ValueError / FileNotFoundError naming the problem; a model without any
analyzable layer (after the filters) raises ValueError.

    summary(df) -> dict   # model-level means (WeightWatcher's get_summary) over successful layers
"""

from wwtune.spectral.analyze import AnalysisOptions, analyze, describe
from wwtune.spectral.columns import COLUMNS
from wwtune.spectral.metrics import summary
from wwtune.spectral.ww_args import WeightWatcherOptionError

__all__ = ["COLUMNS", "AnalysisOptions", "WeightWatcherOptionError", "analyze", "describe", "summary"]
