"""The former home of the `fintag` command line, kept so that `python -m fintag.serve.cli ...` still works.

The command line lives in `fintag.cli` (`fintag.cli.commands` lists the subcommands)."""

from __future__ import annotations

import logging
import sys

from fintag.cli.main import main, setup_logging

logger = logging.getLogger(__name__)

__all__ = ["main", "setup_logging"]

if __name__ == "__main__":
    sys.exit(main())
