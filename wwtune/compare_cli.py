"""`wwtune compare BASE NEW`: did the new version of a model break a layer? (a CI gate / monitoring check)

Compares two checkpoints (files or Hugging Face folders, sharded safetensors included; BASE may also be the
CSV written by ``wwtune analyze``, a stored baseline) layer by layer with :func:`wwtune.compare`. Prints
the layers that changed most and a summary line on stdout, writes every column as CSV (and JSON with
``--json``), shows progress over layers on stderr, and exits with

* 0: no ``--fail-on`` rule fired;
* 1: at least one rule fired on at least one layer (the flagged layers are listed);
* 2: the comparison could not run (bad command line, missing or unreadable file, no analyzable layer);
* 130: interrupted.

    wwtune compare base.safetensors new.safetensors
    wwtune compare base_folder/ new_folder/ --fail-on 'crossed,alpha-shift>0.5' --json report.json
    wwtune compare baseline_analysis.csv new.safetensors --plot plots/
    wwtune compare base.pt new.pt --json - --format github   # a CI step: JSON on stdout, PR annotations

``-`` as a path is stdout (``--json -``, ``--csv -``); the table then goes to stderr. The JSON carries the
inputs, the rules, ``passed`` and every layer; ``--format github`` adds one ``::error`` annotation per
flagged layer.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import pandas as pd

from wwtune.cli_common import (
    STDOUT,
    HelpFormatter,
    Parser,
    Progress,
    UsageError,
    add_analysis_options,
    add_execution_options,
    add_plot_format_option,
    add_quiet_debug_options,
    analysis_options,
    band_arg,
    check_outputs,
    fmt,
    github_annotation,
    int_at_least,
    output_path,
    render_table,
    run_cli,
)
from wwtune.compare import DEFAULT_FAIL_ON, RULES, check_rules, compare, parse_rules
from wwtune.diskio import json_safe

__all__ = ["build_parser", "default_csv_path", "format_changes", "main"]

PROG = "wwtune compare"
_FORMATS = {
    "alpha_base": "{:.3f}",
    "alpha_new": "{:.3f}",
    "delta_alpha": "{:+.3f}",
    "esd_distance": "{:.3f}",
    "esd_ks": "{:.3f}",
    "rel_frobenius_change": "{:.2%}",
    "spectral_norm_change": "{:+.2%}",
}
#: (column, header) of the stdout table, after the layer name.
TABLE = (
    ("shape_new", "shape"),
    ("alpha_base", "α base"),
    ("alpha_new", "α new"),
    ("delta_alpha", "Δα"),
    ("rel_frobenius_change", "ΔW/W"),
    ("spectral_norm_change", "Δσmax"),
    ("esd_distance", "ESD dist"),
    ("esd_ks", "KS"),
    ("verdict", "verdict"),
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``wwtune compare`` (analysis options as ``wwtune analyze``)."""
    rules = "; ".join(f"{k}: {v}" for k, v in RULES.items()).replace("%", "%%")
    p = Parser(
        prog=PROG,
        description="Compare two versions of a model layer by layer from their weights "
        "alone: what changed, and did a layer break (e.g. after compression or retraining)? Exit "
        "status 0: no --fail-on rule fired, 1: some fired, 2: error.",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "base",
        metavar="BASE",
        help="the reference: a checkpoint file, a Hugging Face folder, or "
        "the CSV of `wwtune analyze` (a stored baseline, same analysis options)",
    )
    p.add_argument("new", metavar="NEW", help="the version to check: a checkpoint file or folder")
    add_analysis_options(p)
    add_execution_options(p)
    p.add_argument(
        "--band",
        type=band_arg,
        default=(2.0, 6.0),
        metavar="LO,HI",
        help="healthy alpha range: 'crossed' = alpha was inside and left it",
    )
    p.add_argument(
        "--fail-on",
        default=DEFAULT_FAIL_ON,
        metavar="RULES",
        help=f"comma list of rules; exit status 1 when one fires on any layer ('' or 'none': "
        f"never). Rules: {rules}",
    )
    p.add_argument(
        "--top",
        type=int_at_least(1),
        default=15,
        help="table rows: the layers that changed most (flagged first)",
    )
    p.add_argument("--all", action="store_true", help="show every layer in the table, unchanged ones too")
    out = p.add_mutually_exclusive_group()
    out.add_argument(
        "--csv",
        metavar="FILE",
        help="where to write every column as CSV, '-' for stdout (default: ./<NEW name>_compare.csv)",
    )
    out.add_argument("--no-csv", action="store_true", help="do not write a CSV")
    p.add_argument(
        "--json",
        metavar="FILE",
        help="also write the inputs, the rules, passed (true/false), the summary and every layer as JSON; "
        "'-' for stdout (the table then goes to stderr)",
    )
    p.add_argument(
        "--format",
        choices=("text", "github"),
        default="text",
        help="github: also one GitHub Actions annotation (::error file=NEW::…) per layer flagged by "
        "--fail-on, shown on the pull request",
    )
    p.add_argument(
        "--plot",
        metavar="DIR",
        help="write plots into DIR: alpha per layer, base vs new, band "
        "shaded; the ESDs of the flagged layers, base and new overlaid",
    )
    add_plot_format_option(p)
    add_quiet_debug_options(p, "no progress on stderr")
    return p


def default_csv_path(new: str | os.PathLike[str]) -> Path:
    """``./<name>_compare.csv`` in the working directory; <name> is NEW's file stem or folder name."""
    return output_path(new, "_compare.csv")


def _order(df: pd.DataFrame, fired: pd.Series) -> pd.DataFrame:
    """Flagged layers first, then structural changes, then by how far the spectrum moved."""
    structural = df["presence"].isin(["removed", "added", "reshaped"])
    key = pd.DataFrame(
        {
            "flag": fired.ne(""),
            "struct": structural,
            "dist": df["esd_distance"].fillna(-1.0),
            "frob": df["rel_frobenius_change"].fillna(-1.0),
            "da": df["delta_alpha"].abs().fillna(-1.0),
        }
    )
    idx = key.sort_values(["flag", "struct", "dist", "frob", "da"], ascending=False, kind="stable").index
    return df.loc[idx]


def format_changes(df: pd.DataFrame, fired: pd.Series, top: int | None = 15) -> str:
    """The stdout table: the ``top`` layers that changed most (None: every layer), with the rules fired."""
    ordered = _order(df, fired)
    if top is not None:
        ordered = ordered[ordered["events"] != "unchanged"].head(top)
        if ordered.empty:
            return "no layer changed (every weight byte-identical or with the same spectrum)"
    body = [["layer", *(h for _, h in TABLE), "fail-on"]]
    for i, row in ordered.iterrows():
        cells = []
        for col, _ in TABLE:
            v = row[col]
            cells.append(
                fmt(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v, col, _FORMATS)
            )
        if row["presence"] == "removed":
            cells[0] = str(row["shape_base"])
        body.append([str(row["name"]), *cells, fired[i]])
    numeric = [False, False, *([True] * 7), False, False]
    return render_table(body, numeric)


def _summary(df: pd.DataFrame, fired: pd.Series, rules: str, elapsed: float) -> dict[str, Any]:
    events = df["events"].astype(str)
    flagged = [n for n, f in zip(df["name"], fired, strict=True) if f]
    counts = {k: int(v) for k, v in df["presence"].value_counts().items()}
    return {
        "layers": len(df),
        "unchanged": int(events.eq("unchanged").sum()),
        "small_change": int(events.str.fullmatch("small|renamed,small").sum()),
        "presence": counts,
        "identical": int((df["identical"] == True).sum()),  # noqa: E712 - None = unknown
        "fail_on": rules,
        "flagged": flagged,
        "seconds": round(elapsed, 2),
    }


def _summary_line(s: dict[str, Any]) -> str:
    parts = [
        f"{s['layers']} layers compared in {s['seconds']:.1f} s: {s['unchanged']} unchanged, "
        f"{s['small_change']} small change"
    ]
    other = {k: v for k, v in s["presence"].items() if k != "both"}
    if other:
        parts.append(", ".join(f"{v} {k}" for k, v in other.items()))
    if not s["fail_on"]:
        parts.append("no --fail-on rules")
    elif s["flagged"]:
        parts.append(f"{len(s['flagged'])} flagged by --fail-on {s['fail_on']}: {', '.join(s['flagged'])}")
    else:
        parts.append(f"none flagged by --fail-on {s['fail_on']}")
    return "; ".join(parts)


def _run(args: argparse.Namespace, stdout: IO[str], stderr: IO[str]) -> int:
    for label, given in (("BASE", args.base), ("NEW", args.new)):
        if not Path(given).exists():
            raise FileNotFoundError(f"{label}: no such file or folder: {given!r}")
    rules_text = "" if args.fail_on.strip().lower() in ("", "none") else args.fail_on
    try:
        rules = parse_rules(rules_text)
    except ValueError as e:
        raise UsageError(f"--fail-on: {e}") from None
    if any(name == "new-trap" for name, _ in rules) and not args.randomize:
        args.randomize = True  # the rule needs the correlation-trap analysis
        if not args.quiet:
            stderr.write("--fail-on new-trap: correlation traps need --randomize; turned on\n")
    csv_path = None if args.no_csv else (args.csv if args.csv else default_csv_path(args.new))
    # with '-' one output owns stdout: the table and the summary line go to stderr
    human = stderr if check_outputs((("--csv", csv_path), ("--json", args.json))) else stdout
    what = f"{args.base} vs {args.new}"
    with Progress(what, stderr, enabled=not args.quiet, verb="comparing") as progress:
        df = compare(
            args.base,
            args.new,
            analysis_options(args),
            band=args.band,
            keep_evals=bool(args.plot),
            progress=progress.update,
            workers=args.workers,
            cluster=args.cluster,
        )
    fired = check_rules(df, rules_text) if rules_text else pd.Series([""] * len(df), index=df.index)
    summary = _summary(df, fired, rules_text, progress.elapsed)
    human.write(format_changes(df, fired, None if args.all else args.top) + "\n")
    human.write(_summary_line(summary) + "\n")
    if args.format == "github":
        for line in _annotations(df, fired, args.new):
            human.write(line + "\n")
    human.flush()
    table = df.drop(columns=["evals_base", "evals_new"], errors="ignore").assign(fail_on=fired)
    if csv_path is not None:
        table.to_csv(stdout if str(csv_path) == STDOUT else csv_path, index=False)
        if not args.quiet and str(csv_path) != STDOUT:
            stderr.write(f"CSV ({len(table.columns)} columns): {csv_path}\n")
    if args.json:
        report = json_safe(
            {
                "inputs": {"base": str(args.base), "new": str(args.new)},
                "fail_on": rules_text,
                "rules": [{"rule": name, "threshold": value} for name, value in rules],
                "passed": not summary["flagged"],
                "summary": summary,
                "layers": table.to_dict("records"),
            }
        )
        text = json.dumps(report, indent=1) + "\n"
        if args.json == STDOUT:
            stdout.write(text)
            stdout.flush()
        else:
            Path(args.json).write_text(text)
    if args.plot:
        # lazy: matplotlib only when plots are asked for
        from wwtune.report.compare_plots import save_compare_plots

        flagged = [n for n, f in zip(df["name"], fired, strict=True) if f]
        paths = save_compare_plots(
            df, args.plot, band=args.band, layers=flagged, formats=tuple(args.plot_formats or ("png",))
        )
        if not args.quiet:
            stderr.write(f"plots ({len(paths)} files): {args.plot}\n")
    return 1 if summary["flagged"] else 0


def _annotations(df: pd.DataFrame, fired: pd.Series, new: str) -> list[str]:
    """One GitHub Actions ``::error`` line per flagged layer (file: the NEW checkpoint)."""
    lines = []
    for i, row in df.iterrows():
        if not fired[i]:
            continue
        a, b = row.get("alpha_base"), row.get("alpha_new")
        alphas = f" (α {a:.3f} → {b:.3f})" if isinstance(a, float) and isinstance(b, float) else ""
        lines.append(
            github_annotation(
                "error",
                f"layer {row['name']}: --fail-on {fired[i]}{alphas}",
                file=str(new),
                title=f"wwtune compare: {row['name']}",
            )
        )
    return lines


def main(
    argv: Sequence[str] | None = None, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None
) -> int:
    """Run ``wwtune compare`` with ``argv`` (without the ``compare`` word); returns the exit status.

    Returns:
        0: no ``--fail-on`` rule fired; 1: at least one fired; 2: error (bad command line, missing or
        unreadable checkpoint, no analyzable layer); 130: interrupted.

    Example:
        >>> import io
        >>> from wwtune.compare_cli import main
        >>> err = io.StringIO()
        >>> main(["no/such/base.pt", "new.pt"], stderr=err)
        2
        >>> err.getvalue()
        "wwtune compare: error: BASE: no such file or folder: 'no/such/base.pt'\\n"
    """
    return run_cli(PROG, build_parser(), argv, _run, stdout, stderr, failure_status=2)
