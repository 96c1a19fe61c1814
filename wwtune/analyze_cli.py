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
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import pandas as pd

from wwtune.spectral import analyze, summary
from wwtune.spectral.analyze import DEFAULT_MAX_EVALS, DEFAULT_MIN_EVALS, FITS
from wwtune.spectral.columns import LAYER_TYPES

__all__ = ["TABLE_COLUMNS", "build_parser", "default_csv_path", "format_table", "main"]

PROG = "wwtune analyze"
#: Columns of the stdout table (after the layer name and shape), in order; the CSV has all of them.
TABLE_COLUMNS = ("layer_type", "num_evals", "alpha", "D", "num_pl_spikes", "alpha_weighted", "log_norm",
                 "log_spectral_norm", "stable_rank", "rank_loss", "warning")
#: Extra table columns shown when the matching option is on.
MP_TABLE_COLUMNS = ("num_spikes", "mp_softrank")
RANDOMIZE_TABLE_COLUMNS = ("num_traps", "rand_distance")

_FLOAT_FORMATS = {"alpha": "{:.3f}", "D": "{:.3f}", "alpha_weighted": "{:.3f}", "log_norm": "{:.3f}",
                  "log_spectral_norm": "{:.3f}", "stable_rank": "{:.2f}", "mp_softrank": "{:.3f}",
                  "rand_distance": "{:.3f}"}


class _UsageError(Exception):
    """A bad command line: reported like argparse's own errors (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # noqa: D102 - argparse hook
        raise _UsageError(message)


def _csv_list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer ≥ `low`, with messages naming the bad value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer but got {text!r}") from None
        if value < low:
            need = "cannot be negative" if low == 0 else f"must be at least {low}"
            raise argparse.ArgumentTypeError(f"{need} but got {value}")
        return value

    return parse


def _band(text: str) -> tuple[float, float]:
    parts = _csv_list(text)
    try:
        if len(parts) not in (1, 2):
            raise ValueError
        lo, hi = float(parts[0]), float(parts[-1])
    except ValueError:
        msg = f"expected LO,HI (e.g. 3,4) or one number but got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not 0 < lo <= hi:
        raise argparse.ArgumentTypeError(f"expected 0 < LO <= HI but got {text!r}")
    return lo, hi


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``wwtune analyze`` (options mirror :func:`wwtune.analyze`)."""
    p = _Parser(prog=PROG, description="Spectral diagnostics (power-law α per layer, WeightWatcher's "
                "conventions) of a checkpoint, from its weights alone.",
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("path", metavar="PATH",
                   help="a .pt/.pth/.bin/.safetensors checkpoint or a Hugging Face model folder")
    p.add_argument("--layers", action="append", type=_csv_list, metavar="PATTERNS",
                   help="fnmatch pattern(s) on layer names, comma-separated or repeated "
                   "(e.g. 'encoder.*,pooler.dense'); default: all layers")
    p.add_argument("--layer-types", type=_csv_list, metavar="TYPES",
                   help=f"comma list out of {', '.join(LAYER_TYPES)}; default: all")
    p.add_argument("--min-evals", type=_int_at_least(1), default=DEFAULT_MIN_EVALS,
                   help="skip layers with fewer eigenvalues")
    p.add_argument("--max-evals", type=_int_at_least(1), default=DEFAULT_MAX_EVALS,
                   help="skip layers with more eigenvalues")
    p.add_argument("--fit", choices=sorted(FITS), default="power_law",
                   help="power-law fit (WeightWatcher's) or the Hill estimator with xmin = median")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="precision of the Gram matrices and eigensolver (float32: faster, α within ~1e-3)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--mp-fit", action="store_true",
                   help="add the Marchenko-Pastur columns (num_spikes, sigma_mp, mp_softrank, ...)")
    p.add_argument("--randomize", action="store_true",
                   help="add the correlation-trap columns (num_traps, rand_distance, ...)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of the --randomize shuffle")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--csv", metavar="FILE",
                     help="where to write every column as CSV (default: ./<checkpoint name>_analysis.csv)")
    out.add_argument("--no-csv", action="store_true", help="do not write a CSV")
    p.add_argument("--plot", metavar="DIR",
                   help="write plots into DIR: alpha per layer vs --band, and each layer's ESD (log-log with "
                        "the fitted power law; linear with the Marchenko-Pastur bulk when --mp-fit)")
    p.add_argument("--band", type=_band, default=(2.0, 2.0), metavar="LO,HI",
                   help="target alpha band drawn by --plot (default 2,2; transformers: 3,4)")
    p.add_argument("--plot-format", choices=("png", "svg"), action="append", dest="plot_formats",
                   help="plot file format, repeatable (default png)")
    p.add_argument("--columns", type=_csv_list, metavar="COLS",
                   help="extra columns for the printed table, comma-separated (e.g. xmin,sigma,entropy)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress or summary on stderr")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    return p


def default_csv_path(path: str | os.PathLike[str]) -> Path:
    """``./<name>_analysis.csv`` in the working directory; <name> is the file's stem or the folder's name."""
    p = Path(path).resolve()
    name = p.name if p.is_dir() else p.stem
    return Path.cwd() / f"{name or 'model'}_analysis.csv"


def _fmt(value: Any, column: str) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return _FLOAT_FORMATS.get(column, "{:.4g}").format(value)
    return "" if value is None else str(value)


def _shape(row: pd.Series) -> str:
    shape = f"{int(row['N'])}×{int(row['M'])}"
    return shape if int(row["rf"]) == 1 else f"{shape}×{int(row['rf'])}"


def format_table(df: pd.DataFrame, extra: Sequence[str] = ()) -> str:
    """The per-layer table printed on stdout: layer, shape (N×M[×rf]), the key columns, then ``extra``."""
    cols = [c for c in (*TABLE_COLUMNS, *extra) if c in df.columns]
    cols = list(dict.fromkeys(cols))
    body = [["layer", "shape", *cols]]
    for _, row in df.iterrows():
        body.append([str(row["name"]), _shape(row), *(_fmt(row[c], c) for c in cols)])
    widths = [max(len(r[i]) for r in body) for i in range(len(body[0]))]
    numeric = [False, False] + [pd.api.types.is_numeric_dtype(df[c]) for c in cols]
    lines = []
    for r in body:
        cells = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(r, widths, numeric, strict=True)]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _summary_lines(df: pd.DataFrame, elapsed: float) -> list[str]:
    n = len(df)
    counts = df["warning"].value_counts()
    parts = [f"{counts.get(w, 0)} {w}" for w in ("over-trained", "under-trained", "failed")
             if counts.get(w, 0)]
    means = summary(df)
    return [f"{n} layer{'s' if n != 1 else ''} analyzed in {elapsed:.1f} s"
            + (f" ({', '.join(parts)})" if parts else " (no warnings)"),
            "model means over successful fits: "
            + ", ".join(f"{k} {_fmt(v, k if k in _FLOAT_FORMATS else 'x')}" for k, v in means.items())]


class _Progress:
    """Elapsed-time ticker on stderr while the analysis runs (carriage-return updates on a terminal,
    a line every `line_every` seconds otherwise); silent for work shorter than `delay` seconds."""

    def __init__(self, what: str, stream: IO[str], enabled: bool, delay: float = 1.0,
                 line_every: float = 10.0) -> None:
        self.what, self.stream, self.enabled = what, stream, enabled
        self.delay, self.line_every = delay, line_every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = False
        self.start = 0.0

    def __enter__(self) -> _Progress:
        self.start = time.perf_counter()
        if self.enabled:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        if self._stop.wait(self.delay):
            return
        while True:
            elapsed = time.perf_counter() - self.start
            msg = f"analyzing {self.what} … {elapsed:.0f} s"
            self.stream.write(f"\r{msg}" if tty else f"{msg}\n")
            self.stream.flush()
            self._shown = tty
            if self._stop.wait(1.0 if tty else self.line_every):
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if text else type(exc).__name__


def _run(args: argparse.Namespace, stdout: IO[str], stderr: IO[str]) -> int:
    path = Path(args.path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {args.path!r}")
    csv_path = None if args.no_csv else (Path(args.csv) if args.csv else default_csv_path(path))
    if csv_path is not None:
        if csv_path.is_dir():
            raise _UsageError(f"--csv must be a file path but {str(csv_path)!r} is a folder")
        if not csv_path.parent.is_dir():
            raise _UsageError(f"--csv: folder {str(csv_path.parent)!r} does not exist")
    layers = [p for group in args.layers for p in group] if args.layers else None
    extra = list(args.columns or [])
    if args.mp_fit:
        extra += MP_TABLE_COLUMNS
    if args.randomize:
        extra += RANDOMIZE_TABLE_COLUMNS
    with _Progress(str(path), stderr, enabled=not args.quiet) as progress:
        df = analyze(path, layers=layers, layer_types=args.layer_types, min_evals=args.min_evals,
                     max_evals=args.max_evals, fit=args.fit, mp_fit=args.mp_fit, randomize=args.randomize,
                     seed=args.seed, device=args.device, dtype=args.dtype, keep_evals=bool(args.plot))
    unknown = [c for c in (args.columns or []) if c not in df.columns]
    if unknown:
        raise _UsageError(f"--columns: unknown column(s) {unknown}; available: {', '.join(df.columns)}")
    stdout.write(format_table(df, extra) + "\n")
    stdout.flush()
    table = df.drop(columns=["evals"], errors="ignore")  # arrays (keep_evals, e.g. for plots): not in a CSV
    if csv_path is not None:
        table.to_csv(csv_path, index=False)
    if not args.quiet:
        for line in _summary_lines(df, progress.elapsed):
            stderr.write(line + "\n")
        if csv_path is not None:
            stderr.write(f"CSV ({len(table.columns)} columns): {csv_path}\n")
    if args.plot:
        from wwtune.report import save_model_plots  # lazy: matplotlib only when plots are asked for

        paths = save_model_plots(df, args.plot, band=args.band, formats=tuple(args.plot_formats or ("png",)))
        if not args.quiet:
            stderr.write(f"plots ({len(paths)} files): {args.plot}\n")
    return 0


def main(argv: Sequence[str] | None = None, *, stdout: IO[str] | None = None,
         stderr: IO[str] | None = None) -> int:
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
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    debug = "--debug" in args_list
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("wwtune: %(levelname)s: %(message)s"))
    root = logging.getLogger("wwtune")
    old_level, old_propagate = root.level, root.propagate
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    root.propagate = False
    try:
        try:
            args = parser.parse_args(args_list)
        except SystemExit as e:  # --help (0)
            return int(e.code or 0)
        if args.quiet:
            root.setLevel(logging.ERROR)
        return _run(args, out, err)
    except _UsageError as e:
        err.write(f"{PROG}: error: {_one_line(e)} (see `{PROG} --help`)\n")
        return 2
    except FileNotFoundError as e:
        err.write(f"{PROG}: error: {_one_line(e)}\n")
        if debug:
            raise
        return 2
    except KeyboardInterrupt:
        err.write(f"{PROG}: interrupted\n")
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI boundary: one line, no traceback (unless --debug)
        if debug:
            raise
        err.write(f"{PROG}: error: {_one_line(e)}\n")
        return 1
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        root.propagate = old_propagate
