"""`python -m gtr_backend.server`: the backend process (`reader.main`)."""

import os
import sys

from .reader import main

if __name__ == "__main__":
    code = main()
    # A warm-up still running in its thread (stdin closed early) ends with the process here, not inside PyTorch
    # while the interpreter shuts down.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
