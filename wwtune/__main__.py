"""`python -m wwtune` / `wwtune`: `wwtune analyze PATH ...` for a diagnosis, else a Hydra-configured study."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "analyze":
        # lazy: each command imports only its own modules (the study CLI pulls Hydra, the analyse one not)
        from wwtune.analyze_cli import main as analyze_main

        return analyze_main(args[1:])
    from wwtune.cli import main as study_main  # lazy, as above

    return study_main(args)


if __name__ == "__main__":
    sys.exit(main())
