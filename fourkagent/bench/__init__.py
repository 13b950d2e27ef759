"""Benchmark harness: the paper's task families on freely available real photos, baselines, metrics, timings.

Run ``4kagent bench`` (quick) or ``4kagent bench --full``; ``python -m benchmarks.bench`` is the same.
This module stays light (argparse only) so the CLI can build its parser without heavy imports.
"""

from __future__ import annotations

import argparse

from fourkagent.errors import FourKError


class BenchError(FourKError):
    """The benchmark cannot run as asked (missing photo source, unknown method or family)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The bench options (shared by ``4kagent bench`` and ``python -m benchmarks.bench``)."""
    p.add_argument("--full", action="store_true", help="all families, every photo, larger crops (slow)")
    p.add_argument("-o", "--out", default="bench-results", help="directory for results.csv/json and RESULTS.md")
    p.add_argument("--families", help="comma-separated families (default: all; see --list)")
    p.add_argument("--methods", help="comma-separated methods: bicubic, lanczos, identity, tool:NAME, "
                                     "chain:A+B, chain:oracle, tools (every single tool), agent (per-family profiles)")
    p.add_argument("--profiles", help="comma-separated agent profiles used for every family (default: per family)")
    p.add_argument("--max-images", type=int, help="at most this many cases per family")
    p.add_argument("--hr-side", type=int, help="side of the ground-truth crops (default 256 quick, 480 full)")
    p.add_argument("--seed", type=int, default=0, help="seed for the synthetic degradations")
    p.add_argument("--no-pyiqa", action="store_true", help="do not use pyiqa metrics even when it imports")
    p.add_argument("--no-reports", action="store_true", help="do not copy the agent's run reports into --out")
    p.add_argument("--list", action="store_true", help="list families, photos, methods and metrics, then exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
