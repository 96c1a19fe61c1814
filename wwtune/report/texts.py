"""The HTML report's fixed texts: a plain sentence per section (``EXPLAIN``) and its stylesheet (``CSS``)."""

__all__ = ["CSS", "EXPLAIN"]

EXPLAIN = {
    "intro": (
        "wwtune tried many hyperparameter settings, each in a short training run, and scored every run "
        "by the shape of its trained weights instead of by accuracy on held-out data: by α (alpha), the "
        "power-law exponent of each layer's eigenvalue spectrum. A layer that trained well usually has α "
        "near 2 (2 to 6 is normal); above 6 it learned little, below 2 it may be over-fitted or the run "
        "blew up."
    ),
    "summary": (
        "A trial is one training run with one choice of hyperparameters; its score is the per-trial value "
        "named in 'score rule' below (lower is better). The returned trial is chosen by the 'pick rule', "
        "which may use every trial, so it need not be the trial with the best score."
    ),
    "params": "The settings of the returned run (the pick): use these to train your final model.",
    "layers": (
        "α of each layer of the returned run (the pick) against the target; layers with too few "
        "eigenvalues are listed but not counted in the score."
    ),
    "history": (
        "Each dot is one run in the order it was tried; the green line is the best score found so far, so "
        "a line that stopped falling means more trials are unlikely to help."
    ),
    "heatmap": (
        "Each row is a run and each column a layer; white cells are on target, blue cells have lower α "
        "(heavier-tailed) and red cells higher α (less trained); grey means no fit."
    ),
    "trust": (
        "This checks, on your own task, whether runs with a better α score also did better on held-out "
        "data: if they did, you can tune without held-out data next time. Beside it: the run with the "
        "lowest final training loss, the data-free signal you already have; α earns its place only where "
        "it picks better than that."
    ),
    "pareto": (
        "Each dot is one run, placed by how well it fitted (final training loss) and by how far its layers' "
        "α are from the target band. The line joins the runs no other run beats on both; the star is the "
        "run wwtune recommends (on the front, smallest sum of the two ranks)."
    ),
    "no_trust": (
        "No held-out metric was recorded, so how well the α score ranks runs on this task is not measured: "
        "give your task a held-out metric (return {'heldout': value}) to check it."
    ),
    "advice": (
        "This compares what more training data would buy with what more tuning would buy, measured by "
        "re-running with parts of the data."
    ),
    "spectra": (
        "The eigenvalues of each layer's weight matrix, counted on log scales: a straight right-hand tail "
        "is the 'heavy tail' that α measures (α is minus its slope)."
    ),
    "trials": "Every run with its outcome; pruned runs were stopped early because they looked unpromising.",
}

CSS = """
body{margin:0;background:#f4f6f8;color:#1d2630;font:15px/1.5 -apple-system,"Segoe UI",Roboto,
"DejaVu Sans",Arial,sans-serif}
header{background:#1f4e79;color:#fff;padding:22px 32px}
header h1{margin:0;font-size:26px;font-weight:600}
header p{margin:6px 0 0;opacity:.9}
main{max-width:1120px;margin:0 auto;padding:18px 24px 40px}
section{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);margin:18px 0;
padding:16px 22px}
h2{margin:0 0 4px;font-size:20px;color:#1f4e79}
p.explain{margin:0 0 12px;color:#4a5866;font-style:italic}
table{border-collapse:collapse;margin:8px 0;font-size:14px}
th,td{border-bottom:1px solid #e3e7eb;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#eef2f6;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.over-trained td{background:#fdecea}
tr.under-trained td{background:#fff4e5}
tr.failed td{background:#eeeeee;color:#555}
tr.ineligible td{color:#777}
img{max-width:100%;height:auto;display:block;margin:10px 0;border:1px solid #e3e7eb;border-radius:4px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:8px}
.kv td:first-child{color:#4a5866;white-space:nowrap}
.kv td.num{text-align:left}
.pair{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:18px;margin:18px 0}
.pair>section{margin:0}
.row{display:flex;flex-wrap:wrap;gap:0 28px;align-items:flex-start}
.row>*{flex:0 1 auto;min-width:0}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;color:#fff;font-weight:600}
.badge.well{background:#2ca02c}.badge.poorly{background:#d62728}.badge.inconclusive{background:#7f7f7f}
.badge.mixed{background:#ff7f0e}
.note{color:#4a5866;font-size:13px}
footer{max-width:1120px;margin:0 auto;padding:0 24px 30px;color:#6b7785;font-size:13px}
"""
