"""Thin entry point for the benchmark harness: ``python -m benchmarks.bench [--full] [-o DIR]``.

The harness lives in the installed package (``fourkagent.bench``) so ``4kagent bench`` is the same command.
"""

from __future__ import annotations

import sys

from fourkagent.bench.run import main

if __name__ == "__main__":
    sys.exit(main())
