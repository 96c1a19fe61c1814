"""`wwtune analyze PATH`: the per-layer diagnosis of a checkpoint, for users who just want the numbers.

Prints a readable per-layer table on stdout (layer, shape, α, warning and a few key columns), writes every
column of :func:`wwtune.analyze` to a CSV, and shows progress on stderr while the analysis runs. Errors
(missing file, unreadable checkpoint, bad option, no analyzable layer) are one line on stderr with a
non-zero exit status: 2 for a bad command line, 1 for a failed analysis.

    wwtune analyze model.safetensors
    wwtune analyze path/to/hf_folder --layers 'encoder.*' --dtype float32 --csv diag.csv
    python -m wwtune analyze ckpt.pt --fit hill --mp-fit --randomize
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import pandas as pd

from wwtune.cli_common import (
    STDOUT,
    HelpFormatter,
    add_analysis_options,
    add_execution_options,
    add_plot_format_option,
    add_quiet_debug_options,
    analysis_options,
    band_arg,
    check_outputs,
    csv_list,
    fmt,
    output_path,
    render_table,
    run_cli,
)
from wwtune.cli_common import Parser as _Parser
from wwtune.cli_common import Progress as _Progress
from wwtune.cli_common import UsageError as _UsageError
from wwtune.execution import analyze
from wwtune.spectral import summary

__all__ = ["TABLE_COLUMNS", "build_parser", "default_csv_path", "format_table", "main"]

PROG = "wwtune analyze"
#: Columns of the stdout table (after the layer name and shape), in order; the CSV has all of them.
TABLE_COLUMNS = (
    "layer_type",
    "num_evals",
    "alpha",
    "D",
    "num_pl_spikes",
    "alpha_weighted",
    "log_norm",
    "log_spectral_norm",
    "stable_rank",
    "rank_loss",
    "warning",
)
#: Extra table columns shown when the matching option is on.
MP_TABLE_COLUMNS = ("num_spikes", "mp_softrank")
RANDOMIZE_TABLE_COLUMNS = ("num_traps", "rand_distance")

_FLOAT_FORMATS = {
    "alpha": "{:.3f}",
    "D": "{:.3f}",
    "alpha_weighted": "{:.3f}",
    "log_norm": "{:.3f}",
    "log_spectral_norm": "{:.3f}",
    "stable_rank": "{:.2f}",
    "mp_softrank": "{:.3f}",
    "rand_distance": "{:.3f}",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``wwtune analyze`` (options mirror :func:`wwtune.analyze`)."""
    p = _Parser(
        prog=PROG,
        description="Spectral diagnostics (power-law α per layer, WeightWatcher's "
        "conventions) of a checkpoint, from its weights alone.",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "path", metavar="PATH", help="a .pt/.pth/.bin/.safetensors checkpoint or a Hugging Face model folder"
    )
    add_analysis_options(p)
    add_execution_options(p)
    out = p.add_mutually_exclusive_group()
    out.add_argument(
        "--csv",
        metavar="FILE",
        help="where to write every column as CSV, '-' for stdout (the table then goes to stderr) "
        "(default: ./<checkpoint name>_analysis.csv)",
    )
    out.add_argument("--no-csv", action="store_true", help="do not write a CSV")
    p.add_argument(
        "--keep-evals",
        action="store_true",
        help="store each layer's eigenvalues in the CSV (JSON lists), e.g. as a baseline for "
        "`wwtune compare BASELINE.csv NEW` with the spectral distances",
    )
    p.add_argument(
        "--plot",
        metavar="DIR",
        help="write plots into DIR: alpha per layer vs --band, and each layer's ESD (log-log with "
        "the fitted power law; linear with the Marchenko-Pastur bulk when --mp-fit)",
    )
    p.add_argument(
        "--band",
        type=band_arg,
        default=(2.0, 2.0),
        metavar="LO,HI",
        help="target alpha band drawn by --plot (default 2,2; transformers: 3,4)",
    )
    add_plot_format_option(p)
    p.add_argument(
        "--columns",
        type=csv_list,
        metavar="COLS",
        help="extra columns for the printed table, comma-separated (e.g. xmin,sigma,entropy)",
    )
    add_quiet_debug_options(p, "no progress or summary on stderr")
    return p


def default_csv_path(path: str | os.PathLike[str]) -> Path:
    """``./<name>_analysis.csv`` in the working directory; <name> is the file's stem or the folder's name."""
    return output_path(path, "_analysis.csv")


def _fmt(value: Any, column: str) -> str:
    return fmt(value, column, _FLOAT_FORMATS)


def _shape(row: pd.Series) -> str:
    shape = f"{int(row['N'])}×{int(row['M'])}"
    return shape if int(row["rf"]) == 1 else f"{shape}×{int(row['rf'])}"


def format_table(df: pd.DataFrame, extra: Sequence[str] = ()) -> str:
    """The per-layer table printed on stdout: layer, shape (N×M[×rf]), the key columns, then ``extra``."""
    cols = [c for c in (*TABLE_COLUMNS, *extra) if c in df.columns]
    cols = list(dict.fromkeys(cols))
    body = [["layer", "shape", *cols]]
    for _, row in df.iterrows():
        body.append(
            [
                str(row["longname"] if "longname" in row else row["name"]),
                _shape(row),
                *(_fmt(row[c], c) for c in cols),
            ]
        )
    numeric = [False, False] + [pd.api.types.is_numeric_dtype(df[c]) for c in cols]
    return render_table(body, numeric)


def _summary_lines(df: pd.DataFrame, elapsed: float) -> list[str]:
    n = len(df)
    counts = df["warning"].value_counts()
    parts = [
        f"{counts.get(w, 0)} {w}" for w in ("over-trained", "under-trained", "failed") if counts.get(w, 0)
    ]
    means = summary(df)
    return [
        f"{n} layer{'s' if n != 1 else ''} analyzed in {elapsed:.1f} s"
        + (f" ({', '.join(parts)})" if parts else " (no warnings)"),
        "model means over successful fits: "
        + ", ".join(f"{k} {_fmt(v, k if k in _FLOAT_FORMATS else 'x')}" for k, v in means.items()),
    ]


def _run(args: argparse.Namespace, stdout: IO[str], stderr: IO[str]) -> int:
    path = Path(args.path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {args.path!r}")
    csv_path = None if args.no_csv else (args.csv if args.csv else default_csv_path(path))
    human = stderr if check_outputs([("--csv", csv_path)]) else stdout  # '-': the CSV owns stdout
    csv_out: Any = stdout if str(csv_path) == STDOUT else csv_path
    extra = list(args.columns or [])
    if args.mp_fit:
        extra += MP_TABLE_COLUMNS
    if args.randomize:
        extra += RANDOMIZE_TABLE_COLUMNS
    with _Progress(str(path), stderr, enabled=not args.quiet) as progress:
        df = analyze(
            path,
            analysis_options(args, keep_evals=bool(args.plot or args.keep_evals)),
            workers=args.workers,
            cluster=args.cluster,
            progress=progress.update,
        )
    unknown = [c for c in (args.columns or []) if c not in df.columns]
    if unknown:
        raise _UsageError(f"--columns: unknown column(s) {unknown}; available: {', '.join(df.columns)}")
    human.write(format_table(df, extra) + "\n")
    human.flush()
    # eigenvalue arrays (kept for plots) go into the CSV only with --keep-evals, as JSON lists
    table = df if args.keep_evals else df.drop(columns=["evals"], errors="ignore")
    if csv_path is not None and args.keep_evals:
        from wwtune.compare import write_baseline  # lazy: only with --keep-evals

        write_baseline(table, csv_out)
    elif csv_path is not None:
        table.to_csv(csv_out, index=False)
    if not args.quiet:
        for line in _summary_lines(df, progress.elapsed):
            stderr.write(line + "\n")
        if csv_path is not None and csv_out is not stdout:
            stderr.write(f"CSV ({len(table.columns)} columns): {csv_path}\n")
    if args.plot:
        from wwtune.report import save_model_plots  # lazy: matplotlib only when plots are asked for

        paths = save_model_plots(df, args.plot, band=args.band, formats=tuple(args.plot_formats or ("png",)))
        if not args.quiet:
            stderr.write(f"plots ({len(paths)} files): {args.plot}\n")
    return 0


def main(
    argv: Sequence[str] | None = None, *, stdout: IO[str] | None = None, stderr: IO[str] | None = None
) -> int:
    """Run ``wwtune analyze`` with ``argv`` (without the ``analyze`` word); returns the exit status.

    Args:
        argv: the arguments after the ``analyze`` word, as ``wwtune``'s entry point passes them
            (default ``sys.argv[1:]``).
        stdout: where the table goes (default ``sys.stdout``).
        stderr: where progress, the summary and errors go (default ``sys.stderr``).

    Returns:
        0 on success, 1 when the analysis fails (unreadable checkpoint, no analyzable layer, ...),
        2 for a bad command line (unknown option, bad value, missing file), 130 when interrupted.

    Example:
        >>> import io
        >>> from wwtune.analyze_cli import main
        >>> err = io.StringIO()
        >>> main(["no/such/model.pt"], stderr=err)
        2
        >>> err.getvalue()
        "wwtune analyze: error: no such file or folder: 'no/such/model.pt'\\n"
    """
    return run_cli(PROG, build_parser(), argv, _run, stdout, stderr)
