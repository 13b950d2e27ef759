"""A run killed with SIGKILL after its first reflect checkpoint resumes to a byte-identical output."""

from __future__ import annotations

import pytest

import os
import signal
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "fourkagent.cli"]


def _restore(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + args, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_sigkill_then_resume_is_byte_identical(tmp_path: Path, noisy_small) -> None:
    src, _ = noisy_small
    env = dict(os.environ)
    ref = _restore(["restore", str(src), "-o", str(tmp_path / "ref.png"), "-p", "AerSR-s4-F", "--run-id", "ref"], env)
    assert ref.returncode == 0, ref.stderr

    out = tmp_path / "resumed.png"
    proc = subprocess.Popen(
        CLI + ["restore", str(src), "-o", str(out), "-p", "AerSR-s4-F", "--run-id", "victim"],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    killed = False
    assert proc.stderr is not None
    for line in proc.stderr:
        if "] reflect:" in line:  # reflect's update is streamed after its checkpoint is synced
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
    proc.wait(timeout=60)
    assert killed and proc.returncode == -signal.SIGKILL
    assert not out.exists()

    res = _restore(["restore", "--resume", "victim"], env)
    assert res.returncode == 0, res.stderr
    assert "perceive:" not in res.stderr, "resume re-ran finished nodes"
    assert out.read_bytes() == (tmp_path / "ref.png").read_bytes()


def test_resume_unknown_run_is_a_one_line_error(tmp_path: Path) -> None:
    res = _restore(["restore", "--resume", "nope"], dict(os.environ))
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "no run with id" in res.stderr
