"""The verdict of a compared layer: what changed, as rule codes and words, most serious first.

:func:`events` reads one row of :func:`wwtune.compare.compare` (both sides' fits and the distances between
them) and names every notable change; the thresholds below say how large a change must be to be named.
The ``--fail-on`` rules that turn codes into an exit status are :mod:`wwtune.compare_rules`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ALPHA_SHIFT", "ESD_CHANGED", "KS_CHANGED", "NORM_CHANGED", "RANK_COLLAPSE_SHARE", "events"]

#: ``esd_distance`` (decades) above which the verdict says "spectrum changed": eigenvalues moved by 12 %.
ESD_CHANGED = 0.05
#: |Δ log10 Σλ| above which the verdict says "norm grew/shrank": ‖W‖_F moved by more than 12 %.
NORM_CHANGED = 0.1
#: KS distance above which the verdict says "spectrum changed".
KS_CHANGED = 0.2
#: |Δα| above which the verdict says "α shifted".
ALPHA_SHIFT = 0.5
#: Share of the eigenvalues newly below the noise floor that counts as a rank collapse.
RANK_COLLAPSE_SHARE = 0.1


def events(rec: dict[str, Any], low: float, high: float) -> list[tuple[str, str]]:
    """(rule code, words) of everything notable about one compared layer, most serious first."""
    presence = rec["presence"]
    if presence == "removed":
        return [("removed", "removed (only in base)")]
    if presence == "added":
        return [("added", "added (only in new)")]
    if presence == "reshaped":
        return [("reshaped", f"reshaped {rec['shape_base']} → {rec['shape_new']}")]
    out: list[tuple[str, str]] = []
    if presence == "renamed":
        out.append(("renamed", f"renamed from {rec['renamed_from']}"))
    if rec["identical"] or rec.get("same_spectrum"):
        return [*out, ("unchanged", "unchanged")]
    a_b, a_n = rec["alpha_base"], rec["alpha_new"]
    if rec["status_base"] == "success" and rec["status_new"] != "success":
        out.append(("failed", "fit failed"))
    if rec["crossed"]:
        side = "above" if a_n > high else "below"
        out.append(("crossed", f"crossed {side} the band (α {a_b:.2f} → {a_n:.2f})"))
    if rec["warning_new"] == "under-trained" and rec["warning_base"] != "under-trained":
        out.append(("under-trained", "became under-trained"))
    if rec["warning_new"] == "over-trained" and rec["warning_base"] != "over-trained":
        out.append(("over-trained", "became over-trained"))
    traps_b, traps_n = rec.get("num_traps_base"), rec.get("num_traps_new")
    if (
        traps_b is not None
        and traps_n is not None
        and np.isfinite(traps_b)
        and np.isfinite(traps_n)
        and traps_n > traps_b
    ):
        out.append(("new-trap", f"new correlation trap ({traps_b:.0f} → {traps_n:.0f})"))
    rl_b, rl_n, n_ev = rec["rank_loss_base"], rec["rank_loss_new"], rec["num_evals_new"]
    if np.isfinite(rl_b) and np.isfinite(rl_n) and rl_n - rl_b >= max(1.0, RANK_COLLAPSE_SHARE * n_ev):
        out.append(("rank-collapse", f"rank collapse (rank loss {rl_b:.0f} → {rl_n:.0f})"))
    dist, ks = rec["esd_distance"], rec["esd_ks"]
    if (np.isfinite(dist) and dist > ESD_CHANGED) or (np.isfinite(ks) and ks > KS_CHANGED):
        out.append(("spectrum", f"spectrum changed ({dist:.2f} decades, KS {ks:.2f})"))
    dn = rec["delta_log_norm"]
    if np.isfinite(dn) and abs(dn) > NORM_CHANGED:
        out.append(("norm", f"norm {'grew' if dn > 0 else 'shrank'} ×{10 ** (dn / 2):.2f}"))
    da = rec["delta_alpha"]
    if np.isfinite(da) and abs(da) > ALPHA_SHIFT and not rec["crossed"]:
        out.append(("alpha-shift", f"α shifted {da:+.2f}"))
    if len(out) == (1 if presence == "renamed" else 0):
        out.append(("small", "small change"))
    return out
