"""`python -m gtr_backend.cli` (and `torchrun -m gtr_backend.cli`): the `gtr` command."""

import sys

from . import main

sys.exit(main())
