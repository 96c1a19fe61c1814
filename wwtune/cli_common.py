"""What the ``wwtune analyze`` and ``wwtune compare`` commands share: argument types, the analysis options,
the plain-text table, the progress line on stderr and the error boundary (one line, exit status)."""

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

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from wwtune.exceptions import UsageError
from wwtune.spectral.analyze import DEFAULT_MAX_EVALS, DEFAULT_MIN_EVALS, FITS, AnalysisOptions
from wwtune.spectral.columns import LAYER_TYPES

__all__ = [
    "STDOUT",
    "HelpFormatter",
    "Parser",
    "Progress",
    "UsageError",
    "add_analysis_options",
    "add_execution_options",
    "analysis_options",
    "check_outputs",
    "github_annotation",
    "band_arg",
    "csv_list",
    "fmt",
    "int_at_least",
    "layer_patterns",
    "output_path",
    "one_line",
    "render_table",
    "run_cli",
]


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # noqa: D102 - argparse hook
        raise UsageError(message)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each default printed once: not where the help text already says its default, and not
    for options whose default is "not given" (None, False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default is None or action.default is False:
            return text
        return super()._get_help_string(action)


#: the path that means standard output
STDOUT = "-"


def check_outputs(outputs: Sequence[tuple[str, Path | str | None]]) -> bool:
    """Check ``(option, path)`` outputs: a file in an existing folder, or ``-`` (stdout) for one of them.

    Returns whether one of them is stdout (then the human-readable text goes to stderr).
    """
    to_stdout = [opt for opt, target in outputs if target is not None and str(target) == STDOUT]
    if len(to_stdout) > 1:
        raise UsageError(f"only one output can be '-' (stdout) but {' and '.join(to_stdout)} both are")
    for opt, target in outputs:
        if target is None or str(target) == STDOUT:
            continue
        target = Path(target)
        if target.is_dir():
            raise UsageError(f"{opt} must be a file path or '-' (stdout) but {str(target)!r} is a folder")
        if not target.parent.is_dir():
            raise UsageError(f"{opt}: folder {str(target.parent)!r} does not exist")
    return bool(to_stdout)


def _gh_escape(text: str, prop: bool = False) -> str:
    out = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return out.replace(":", "%3A").replace(",", "%2C") if prop else out


def github_annotation(level: str, message: str, *, file: str | None = None, title: str | None = None) -> str:
    """One GitHub Actions workflow command (``::error file=…,title=…::message``), escaped."""
    props = [f"{k}={_gh_escape(v, prop=True)}" for k, v in (("file", file), ("title", title)) if v]
    return f"::{level}{' ' + ','.join(props) if props else ''}::{_gh_escape(message)}"


def csv_list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def int_at_least(low: int) -> Callable[[str], int]:
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


def band_arg(text: str) -> tuple[float, float]:
    """An argparse type: ``LO,HI`` (or one number) with 0 < LO ≤ HI."""
    parts = csv_list(text)
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


def add_plot_format_option(p: argparse.ArgumentParser) -> None:
    """``--plot-format png|svg`` (repeatable), shared by ``analyze`` and ``compare``."""
    p.add_argument(
        "--plot-format",
        choices=("png", "svg"),
        action="append",
        dest="plot_formats",
        help="plot file format, repeatable (default png)",
    )


def add_quiet_debug_options(p: argparse.ArgumentParser, quiet_help: str) -> None:
    """``-q/--quiet`` (what it silences: ``quiet_help``) and ``--debug`` (full tracebacks)."""
    p.add_argument("-q", "--quiet", action="store_true", help=quiet_help)
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def add_analysis_options(p: argparse.ArgumentParser) -> None:
    """The options that mirror :func:`wwtune.analyze`'s keywords (layers, types, eigenvalue limits, fit,
    precision, device, MP fit, correlation traps, seed)."""

    p.add_argument(
        "--layers",
        action="append",
        type=csv_list,
        metavar="PATTERNS",
        help="fnmatch pattern(s) on layer names, comma-separated or repeated "
        "(e.g. 'encoder.*,pooler.dense'); default: all layers",
    )
    p.add_argument(
        "--layer-types",
        type=csv_list,
        metavar="TYPES",
        help=f"comma list out of {', '.join(LAYER_TYPES)}; default: all",
    )
    p.add_argument(
        "--min-evals",
        type=int_at_least(1),
        default=DEFAULT_MIN_EVALS,
        help="skip layers with fewer eigenvalues",
    )
    p.add_argument(
        "--max-evals",
        type=int_at_least(1),
        default=DEFAULT_MAX_EVALS,
        help="skip layers with more eigenvalues",
    )
    p.add_argument(
        "--fit",
        choices=sorted(FITS),
        default="power_law",
        help="power_law: WeightWatcher's power-law fit ('PL'); hill: the Hill estimator with xmin = median; "
        "truncated_power_law: WeightWatcher's 'TPL' (adds Lambda)",
    )
    p.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default="float64",
        help="precision of the Gram matrices and eigensolver (float32: faster, α within ~1e-3)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument(
        "--mp-fit",
        action="store_true",
        help="add the Marchenko-Pastur columns (num_spikes, sigma_mp, mp_softrank, ...)",
    )
    p.add_argument(
        "--randomize",
        action="store_true",
        help="add the correlation-trap columns (num_traps, rand_distance, ...)",
    )
    p.add_argument("--seed", type=int_at_least(0), default=0, help="seed of the --randomize shuffle")


def workers_arg(text: str) -> int | str:
    """``--workers``: a positive integer or ``auto``."""
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer or 'auto', not {text!r}")
    return int(text)


def add_execution_options(p: argparse.ArgumentParser) -> None:
    """``--workers`` / ``--cluster``: where the layers are analysed (see :mod:`wwtune.execution`)."""
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers",
        type=workers_arg,
        default=None,
        metavar="N",
        help="analyse layers in N worker processes of this machine, or 'auto' (from cores and memory); "
        "default: one process",
    )
    where.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="analyse layers on a Dask cluster, e.g. tcp://scheduler:8786 (pip install 'wwtune[cluster]'; "
        "the workers must see the checkpoint's path)",
    )


def output_path(model: str | os.PathLike[str], suffix: str) -> Path:
    """``./<name><suffix>`` in the working directory; <name> is the model file's stem or its folder's name."""
    p = Path(model).resolve()
    name = p.name if p.is_dir() else p.stem
    return Path.cwd() / f"{name or 'model'}{suffix}"


def layer_patterns(args: argparse.Namespace) -> list[str] | None:
    """The ``--layers`` patterns, flattened (None: all layers)."""
    return [p for group in args.layers for p in group] if args.layers else None


def analysis_options(args: argparse.Namespace, **changes: Any) -> AnalysisOptions:
    """The :class:`~wwtune.spectral.analyze.AnalysisOptions` of the flags :func:`add_analysis_options`
    added (``changes`` applied over them): the one place both commands turn flags into options."""
    flags = {
        "layers": layer_patterns(args),
        "layer_types": args.layer_types,
        "min_evals": args.min_evals,
        "max_evals": args.max_evals,
        "fit": args.fit,
        "mp_fit": args.mp_fit,
        "randomize": args.randomize,
        "seed": args.seed,
        "device": args.device,
        "dtype": args.dtype,
    }
    return AnalysisOptions(**{**flags, **changes})


def fmt(value: Any, column: str, formats: dict[str, str]) -> str:
    """One table cell: floats by ``formats[column]`` (default 4 significant digits), NaN as "–"."""
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return formats.get(column, "{:.4g}").format(value)
    return "" if value is None else str(value)


def render_table(body: list[list[str]], numeric: Sequence[bool]) -> str:
    """Rows of cells (the first is the header) as aligned text: numeric columns right-aligned, a rule line
    under the header."""
    widths = [max(len(r[i]) for r in body) for i in range(len(body[0]))]
    lines = []
    for r in body:
        cells = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(r, widths, numeric, strict=True)]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


class Progress:
    """Progress on stderr while the work runs, drawn by tqdm: the elapsed time, then ``done/total`` layers
    once :meth:`update` was called; silent for work shorter than `delay` seconds. On a terminal the bar is
    redrawn every second, otherwise every `line_every` seconds. While it runs, ``wwtune`` log records go
    through ``tqdm.contrib.logging.logging_redirect_tqdm`` so they do not tear the bar.

    What tqdm does not do is the redraw while one long layer runs (it draws on updates only): a small
    ticker thread refreshes the elapsed time."""

    def __init__(
        self,
        what: str,
        stream: IO[str],
        enabled: bool,
        delay: float = 1.0,
        line_every: float = 10.0,
        verb: str = "analyzing",
    ) -> None:
        self.what, self.stream, self.enabled, self.verb = what, stream, enabled, verb
        self.delay, self.line_every = delay, line_every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar: tqdm | None = None
        self._redirect: Any = None
        self._tty = bool(getattr(stream, "isatty", lambda: False)())
        self._drawn = False  # a frame is on the stream (cleared on exit, so nothing runs on after it)
        self.start = 0.0

    def __enter__(self) -> Progress:
        self.start = time.perf_counter()
        if not self.enabled:
            return self
        self._bar = tqdm(
            total=None,
            desc=f"{self.verb} {self.what}",
            file=self.stream,
            delay=self.delay,
            mininterval=1.0 if self._tty else self.line_every,
            leave=False,
            bar_format=_BAR_UNKNOWN,
            dynamic_ncols=self._tty,
        )
        self._redirect = logging_redirect_tqdm(loggers=[logging.getLogger("wwtune")])
        self._redirect.__enter__()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def update(self, done: int, total: int, name: str = "") -> None:
        """Record that ``done`` of ``total`` layers are finished (``name``: the last one)."""
        bar = self._bar
        if bar is None:
            return
        with bar.get_lock():
            bar.total, bar.n = total, done
            label = f" ({name})".replace("{", "{{").replace("}", "}}") if name else ""
            bar.bar_format = _BAR_KNOWN.replace("{name}", label)
        if self._tty and self.elapsed >= self.delay:
            self._draw(bar)

    def _run(self) -> None:
        if self._stop.wait(self.delay):
            return
        while self._bar is not None:
            self._draw(self._bar)
            if self._stop.wait(1.0 if self._tty else self.line_every):
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
        if self._bar is not None:
            if self._drawn:  # tqdm's close clears only frames it drew from update(); the ticker's too
                self._bar.clear()
            self._bar.close()

    def _draw(self, bar: tqdm) -> None:
        bar.refresh()
        self._drawn = True

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start


#: tqdm's bar formats: "analyzing model.pt … 3 s" before the first layer is done (the README test drops
#: this heartbeat), then the bar with done/total layers
_BAR_UNKNOWN = "{desc} … {elapsed_s:.0f} s"
_BAR_KNOWN = "{desc} … {percentage:3.0f}%|{bar:20}| {n_fmt}/{total_fmt} layers{name} {elapsed_s:.0f} s"


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if text else type(exc).__name__


def run_cli(
    prog: str,
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    run: Callable[[argparse.Namespace, IO[str], IO[str]], int],
    stdout: IO[str] | None,
    stderr: IO[str] | None,
    failure_status: int = 1,
) -> int:
    """Parse ``argv`` and call ``run(args, stdout, stderr)`` behind the CLI boundary: ``wwtune`` log
    records on stderr (errors only with ``--quiet``), a bad command line or a missing file as one line and
    status 2, any other error as one line and ``failure_status`` (the traceback with ``--debug``),
    Ctrl-C as status 130."""
    out = sys.stdout if stdout is None else stdout
    err = sys.stderr if stderr is None else stderr
    args_list = list(sys.argv[1:] if argv is None else argv)
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
        return run(args, out, err)
    except UsageError as e:
        err.write(f"{prog}: error: {one_line(e)} (see `{prog} --help`)\n")
        return 2
    except FileNotFoundError as e:
        err.write(f"{prog}: error: {one_line(e)}\n")
        if debug:
            raise
        return 2
    except KeyboardInterrupt:
        err.write(f"{prog}: interrupted\n")
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI boundary: one line, no traceback (unless --debug)
        if debug:
            raise
        err.write(f"{prog}: error: {one_line(e)}\n")
        return failure_status
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        root.propagate = old_propagate
