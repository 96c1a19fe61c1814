"""The ONE place where every column of :func:`wwtune.spectral.analyze`'s DataFrame is documented.

Names follow WeightWatcher 0.7.7 wherever the quantity is the same (``layer_id``, ``longname``, ``alpha``,
``alpha_weighted``, ``log_norm``, ``log_spectral_norm``, ``spectral_norm``, ``stable_rank``, ``D``, ``xmin``,
``xmax``, ``num_pl_spikes``, ``num_spikes``, ``sigma_mp``, ``mp_softrank``, ``rand_distance``, …). ``name`` is
WeightWatcher's short name and ``longname`` the full path (since wwtune 0.x, see CHANGELOG.md). Where they
differ: ``layer_type`` is a plain string ('dense', 'conv2d', …)
instead of WeightWatcher's LAYER_TYPE enum. λ are the eigenvalues of WᵀW (squared
singular values, not divided by N) pooled over a layer's matrices (conv: all kernel positions, each
slice scaled by 1/√2 as WeightWatcher does, so conv eigenvalues are halved).
"""

from __future__ import annotations

__all__ = [
    "ALWAYS",
    "COLUMNS",
    "DESCRIBE_COLUMNS",
    "LAYER_TYPES",
    "MP_COLUMNS",
    "RANDOMIZE_COLUMNS",
    "WARNINGS",
]

#: Values of ``layer_type``.
LAYER_TYPES = ("dense", "embedding", "conv1d", "conv2d", "conv3d")
#: Values of ``warning``.
WARNINGS = ("", "over-trained", "under-trained", "failed")

COLUMNS: dict[str, str] = {
    # identity and shape
    "layer_id": "WeightWatcher's layer_id: the index of the layer's module in model.named_modules() (0 is "
    "the model itself; MHA q/k/v rows share their module's id); for a state_dict or file, the order of "
    "the weights' modules in it. Integer ids select layers in analyze(layers=[...])",
    "name": "WeightWatcher's name: for an nn.Module, the last part of the module path (e.g. 'query'); for a "
    "state_dict, file or folder, the full key prefix (the same as longname). Not unique: use longname to "
    "tell layers apart",
    "longname": "full module path / state-dict prefix, e.g. 'encoder.layer.0.attention.self.query'; "
    "nn.MultiheadAttention's packed in_proj gives '<mha>.in_proj.q', '.k', '.v'",
    "layer_type": "one of 'dense' (Linear, HF Conv1D, MHA q/k/v, 2-D state-dict tensors), 'embedding', "
    "'conv1d', 'conv2d', 'conv3d'",
    "N": "larger side of the (per kernel position) weight matrix",
    "M": "smaller side of the weight matrix",
    "Q": "aspect ratio N / M",
    "rf": "receptive field: number of kernel positions (1 for dense and embedding layers)",
    "num_evals": "number of eigenvalues, M * rf",
    # power-law fit (spec §3)
    "alpha": "power-law exponent of the ESD tail (continuous CSN fit, or Hill when fit='hill'); -1 if failed",
    "xmin": "start of the fitted power-law tail (an eigenvalue)",
    "xmax": "largest eigenvalue (= lambda_max)",
    "D": "Kolmogorov-Smirnov distance of the fitted tail",
    "sigma": "standard error of alpha, (alpha - 1) / sqrt(tail size)",
    "num_pl_spikes": "number of eigenvalues in the fitted tail (λ ≥ xmin)",
    # norms (spec §4)
    "norm": "Σλ = squared Frobenius norm (summed over kernel positions, conv slices scaled by 1/√2)",
    "log_norm": "log10(norm)",
    "lambda_max": "largest eigenvalue",
    "spectral_norm": "largest eigenvalue (WeightWatcher's name; = lambda_max)",
    "sv_max": "largest singular value, sqrt(lambda_max)",
    "sv_min": "WeightWatcher's sv_min: the smallest singular value (conv: the largest of the kernel "
    "positions' smallest singular values, scaled like the eigenvalues)",
    "has_esd": "True when the layer's eigenvalues were computed (False: non-finite weights)",
    "Lambda": "fit='TPL'/'E_TPL': truncation rate Λ of the truncated power law (alpha is then the TPL α)",
    "num_fingers": "fix_fingers='clip_xmax': how many top eigenvalues were clipped as fingers (0: none)",
    "raw_alpha": "fix_fingers='clip_xmax': alpha before any clipping",
    "rand_num_spikes": "randomize: WeightWatcher's second name of num_traps (the same value)",
    "log_spectral_norm": "log10(lambda_max)",
    "alpha_weighted": "alpha * log10(lambda_max) (α-hat)",
    "log_alpha_norm": "log10(Σ λ^alpha)",
    "stable_rank": "norm / lambda_max",
    "entropy": "matrix entropy -Σ p ln p / ln(matrix_rank), p = λ/Σλ (NaN when matrix_rank ≤ 1)",
    "matrix_rank": "#{λ > lambda_max * N * eps(dtype)}: the Gram eigenvalues' noise floor (WeightWatcher: "
    "sqrt(λ) > sqrt(lambda_max) * N * eps on SVD values; equal unless sv_min < sqrt(N * eps) * sv_max)",
    "rank_loss": "num_evals - matrix_rank",
    "weak_rank_loss": "#{λ < 1e-6}",
    # outcome
    "status": "'success' or 'failed' (alpha = -1 and fit columns NaN when failed)",
    "warning": "'' | 'over-trained' (alpha < 2) | 'under-trained' (alpha > 6) | 'failed'",
    "fail_reason": "why status is 'failed' (e.g. 'weights contain 3 NaN/Inf values'), else ''",
    # optional
    "evals": "with keep_evals=True: the layer's eigenvalues, float64 numpy array, ascending",
    "num_spikes": "mp_fit: eigenvalues above the Marchenko-Pastur bulk edge plus a Tracy-Widom margin",
    "sigma_mp": "mp_fit: σ of the Marchenko-Pastur law fitted to the ESD rescaled to mean 1",
    "mp_softrank": "mp_fit: bulk_max / lambda_max",
    "bulk_max": "mp_fit: MP bulk edge σ²(1 + 1/√Q)², in the layer's own eigenvalue scale",
    "bulk_min": "mp_fit: MP lower edge σ²(1 - 1/√Q)², in the layer's own eigenvalue scale",
    "W_scale": "mp_fit/randomize: factor that rescales W so its ESD has mean 1, sqrt(num_evals / norm)",
    "num_traps": "randomize: correlation traps, eigenvalues of the entry-shuffled W above its own MP edge "
    "(plus Tracy-Widom margin)",
    "rand_distance": "randomize: Jensen-Shannon distance between the sorted, sum-normalised eigenvalues of "
    "W and of the shuffled W",
    "max_rand_eval": "randomize: largest eigenvalue of the shuffled W",
    "rand_bulk_max": "randomize: MP bulk edge fitted to the shuffled W's ESD (own scale)",
    "rand_sigma_mp": "randomize: σ_mp fitted to the shuffled W's ESD",
}

#: Columns present in every result.
ALWAYS = (
    "layer_id",
    "name",
    "longname",
    "layer_type",
    "N",
    "M",
    "Q",
    "rf",
    "num_evals",
    "alpha",
    "xmin",
    "xmax",
    "D",
    "sigma",
    "num_pl_spikes",
    "alpha_weighted",
    "log_norm",
    "log_spectral_norm",
    "log_alpha_norm",
    "stable_rank",
    "entropy",
    "matrix_rank",
    "rank_loss",
    "weak_rank_loss",
    "lambda_max",
    "norm",
    "spectral_norm",
    "sv_max",
    "sv_min",
    "has_esd",
    "status",
    "warning",
    "fail_reason",
)
MP_COLUMNS = ("num_spikes", "sigma_mp", "mp_softrank", "bulk_max", "bulk_min", "W_scale")
RANDOMIZE_COLUMNS = (
    "num_traps",
    "rand_num_spikes",
    "rand_distance",
    "max_rand_eval",
    "rand_bulk_max",
    "rand_sigma_mp",
)
#: The columns of ``describe()``: what is known before any eigenvalue is computed.
DESCRIBE_COLUMNS = ("layer_id", "name", "longname", "layer_type", "N", "M", "Q", "rf", "num_evals")
