"""CLI: listings, and bad input answered with one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import photo, write

CLI = [sys.executable, "-m", "fourkagent.cli"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=300, env=dict(os.environ))


def test_profiles_lists_all_sixteen() -> None:
    res = _cli("profiles")
    assert res.returncode == 0
    assert len(res.stdout.strip().splitlines()) == 16 and "FastGen4K-P" in res.stdout


def test_tools_json() -> None:
    rows = json.loads(_cli("tools", "--json").stdout)
    cats = {r["category"] for r in rows if r["available"]}
    assert {"super-resolution", "denoising", "brightening"} <= cats
    assert all({"name", "category", "backend", "scale", "slow", "available"} <= set(r) for r in rows)


def test_restore_prints_summary_and_writes_report(tmp_path: Path) -> None:
    src = write(tmp_path, "in.png", photo("chelsea")[:48, :64])
    out = tmp_path / "out.png"
    res = _cli("restore", str(src), "-o", str(out), "-p", "ExpSR-s4-F")
    assert res.returncode == 0, res.stderr
    assert "64x48 -> 256x192" in res.stdout
    assert (tmp_path / "out.report.json").exists()
    assert f"report: {tmp_path / 'out.report.json'}" in res.stdout.splitlines()
    assert f"html report: {tmp_path / 'out.report.html'}" in res.stdout.splitlines()  # the file a person opens
    assert (tmp_path / "out.report.html").is_file()
    first = res.stderr.splitlines()[0]  # printed before the agent loads, in the progress lines' format
    assert first.startswith("[ ") and f"restore {src} -> {out}: loading the agent" in first
    again = _cli("restore", str(src), "-o", str(out), "-p", "ExpSR-s4-F")
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.mark.parametrize("case", ["missing", "not_image", "empty", "unknown_profile", "bad_ext", "truncated"])
def test_bad_input_is_one_line(tmp_path: Path, case: str) -> None:
    good = write(tmp_path, "good.png", photo("chelsea")[:32, :32])
    before = good.read_bytes()
    inp, out, prof = str(good), str(tmp_path / "o.png"), "ExpSR-s2-F"
    if case == "missing":
        inp = str(tmp_path / "nope.png")
    elif case == "not_image":
        (tmp_path / "t.png").write_text("hello")
        inp = str(tmp_path / "t.png")
    elif case == "empty":
        (tmp_path / "e.jpg").write_bytes(b"")
        inp = str(tmp_path / "e.jpg")
    elif case == "unknown_profile":
        prof = "NoSuchProfile"
    elif case == "bad_ext":
        out = str(tmp_path / "o.xyz")
    elif case == "truncated":
        (tmp_path / "tr.png").write_bytes(before[: len(before) // 2])
        inp = str(tmp_path / "tr.png")
    res = _cli("restore", inp, "-o", out, "-p", prof)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and res.stderr.startswith("4kagent: error:")
    assert good.read_bytes() == before
    assert not Path(out).exists()
