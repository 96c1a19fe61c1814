"""`python -m wwtune` / `wwtune`: `wwtune analyze PATH ...` for a diagnosis, `wwtune compare BASE NEW ...` for
two versions of a model, `wwtune repair-journal PATH` to mend a refused journal, else a Hydra-configured
study."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "analyze":
        # lazy: each command imports only its own modules (the study CLI pulls Hydra, the analyse one not)
        from wwtune.analyze_cli import main as analyze_main

        return analyze_main(args[1:])
    if args and args[0] == "compare":
        from wwtune.compare_cli import main as compare_main  # lazy, as above

        return compare_main(args[1:])
    if args and args[0] == "repair-journal":
        from wwtune.journal_repair import main as repair_main  # lazy, as above

        return repair_main(args[1:])
    from wwtune.cli_help import HELP_FLAGS, VERSION_FLAGS, help_text, version_text  # lazy, as above

    if any(a in VERSION_FLAGS for a in args):  # before Hydra, whose --version names only itself
        print(version_text())
        return 0
    if any(a in HELP_FLAGS for a in args):  # before Hydra, whose --help page knows nothing of wwtune
        print(help_text(), end="")
        return 0
    from wwtune.cli import main as study_main  # lazy, as above

    return study_main(args)


if __name__ == "__main__":
    sys.exit(main())
