"""`python -m fintag.cli <command> ...` (what `accelerate launch -m` needs)."""

import sys

from fintag.cli.main import main

sys.exit(main())
