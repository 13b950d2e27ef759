"""CLI from the first command: mistakes reported before the heavy imports, a first progress line before LangGraph
loads, quiet ends in closed pipes, and light checks that say what the run's own checks say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import photo, write

from fourkagent import cli_checks
from fourkagent.errors import FourKError

CLI = [sys.executable, "-m", "fourkagent.cli"]
HEAVY = ("torch", "pyiqa", "langgraph", "numpy", "cv2", "PIL", "pydantic")
HARNESS = (
    "import json, sys\n"
    "from fourkagent.cli import main\n"
    "code = main(sys.argv[1:])\n"
    f"print(json.dumps({{'code': code, 'loaded': sorted(m for m in {HEAVY!r} if m in sys.modules)}}))\n"
)


def _harness(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[str], str]:
    """``cli.main(args)`` in a fresh interpreter: its exit code, the heavy modules it imported, its stderr."""
    res = subprocess.run([sys.executable, "-c", HARNESS, *args], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ) | (env or {}))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return out["code"], out["loaded"], res.stderr


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    good = write(tmp_path, "good.png", photo("chelsea")[:32, :32])
    exists = tmp_path / "exists.png"
    exists.write_bytes(b"an earlier result")
    os.utime(exists, (1_000_000_000, 1_000_000_000))
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "adir.png").mkdir()
    return {"good": good, "exists": exists, "empty": tmp_path / "empty.png", "adir": tmp_path / "adir.png",
            "dir": tmp_path}


INSTANT = {  # case -> (restore arguments, words of the message)
    "missing_input": (lambda w: [str(w["dir"] / "nope.png"), "-o", str(w["dir"] / "o.png")], "no such file"),
    "input_is_directory": (lambda w: [str(w["adir"]), "-o", str(w["dir"] / "o.png")], "not a regular file"),
    "empty_input": (lambda w: [str(w["empty"]), "-o", str(w["dir"] / "o.png")], "empty file"),
    "unknown_profile": (lambda w: [str(w["good"]), "-o", str(w["dir"] / "o.png"), "-p", "NoSuchProfile"],
                        "unknown profile 'NoSuchProfile'"),
    "missing_profile_file": (lambda w: [str(w["good"]), "-o", str(w["dir"] / "o.png"), "-p", str(w["dir"] / "p.yaml")],
                             "does not exist"),
    "output_exists": (lambda w: [str(w["good"]), "-o", str(w["exists"])], "already exists"),
    "output_exists_bad_input": (lambda w: [str(w["dir"] / "nope.png"), "-o", str(w["exists"]), "-p", "Nope"],
                                "already exists"),
    "output_bad_extension": (lambda w: [str(w["good"]), "-o", str(w["dir"] / "o.xyz")], "unsupported output extension"),
    "output_dir_missing": (lambda w: [str(w["good"]), "-o", str(w["dir"] / "nowhere" / "o.png")], "does not exist"),
    "output_is_input": (lambda w: [str(w["good"]), "-o", str(w["good"]), "--overwrite"], "is the input file"),
    "no_output": (lambda w: [str(w["good"])], "needs INPUT and -o OUTPUT"),
    "bad_device": (lambda w: [str(w["good"]), "-o", str(w["dir"] / "o.png"), "--device", "tpu"], "device 'tpu'"),
}


@pytest.mark.parametrize("case", list(INSTANT))
def test_mistakes_are_one_line_before_any_heavy_import(world: dict[str, Path], case: str) -> None:
    make, words = INSTANT[case]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (world["good"], world["exists"])}
    code, loaded, err = _harness("restore", *make(world))
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("4kagent: error:") and words in lines[0], err
    assert loaded == [], f"imported {loaded} before reporting the mistake"
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in before} == before  # the existing output untouched
    assert not (world["dir"] / "o.png").exists()


def test_a_damaged_image_is_one_line_without_torch(world: dict[str, Path]) -> None:
    (world["dir"] / "t.png").write_text("hello")
    code, loaded, err = _harness("restore", str(world["dir"] / "t.png"), "-o", str(world["dir"] / "o.png"))
    assert code == 2 and err.startswith("4kagent: error:") and len(err.strip().splitlines()) == 1, err
    assert "not an image" in err
    assert not {"torch", "pyiqa", "langgraph"} & set(loaded), loaded


def test_perceive_reports_a_missing_image_before_loading_anything(world: dict[str, Path]) -> None:
    code, loaded, err = _harness("perceive", str(world["dir"] / "nope.png"))
    assert code == 2 and err.strip() == f"4kagent: error: {world['dir'] / 'nope.png'}: no such file"
    assert loaded == []


def test_profiles_listing_loads_nothing_heavy() -> None:
    code, loaded, err = _harness("profiles")
    assert code == 0 and err == "" and loaded == []


def test_first_line_comes_before_langgraph_loads(world: dict[str, Path]) -> None:
    """With ``-X importtime`` every import is logged to stderr as it happens: the progress line precedes LangGraph's.

    The run then stops on a work directory that is a file (an error the run finds after loading LangGraph)."""
    env = dict(os.environ) | {"FOURKAGENT_HOME": str(world["exists"])}
    res = subprocess.run([sys.executable, "-X", "importtime", *CLI[1:], "restore", str(world["good"]), "-o",
                          str(world["dir"] / "o.png"), "-p", "ExpSR-s2-F"], capture_output=True, text=True,
                         timeout=300, env=env)
    lines = res.stderr.splitlines()
    first = next(i for i, line in enumerate(lines) if not line.startswith("import time:"))
    assert "loading the agent" in lines[first] and lines[first].startswith("[ "), lines[first]
    imported = [line.rsplit("|", 1)[-1].strip() for line in lines[:first] if line.startswith("import time:")]
    assert not {"langgraph", "torch", "pyiqa"} & set(imported)
    assert any(line.rsplit("|", 1)[-1].strip() == "langgraph" for line in lines[first:])
    assert res.returncode != 0 and lines[-1].startswith("4kagent: error:")
    assert world["exists"].read_bytes() == b"an earlier result"


def _closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with its stdout on a pipe whose reader is already gone (as ``| head -1`` once head exits)."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run(CLI + list(args), stdout=w, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(w)


@pytest.mark.parametrize("args", [["profiles"], ["profiles", "--json"], ["tools"]])
def test_a_reader_that_left_ends_the_listing_quietly(args: list[str]) -> None:
    res = _closed_pipe(*args)
    assert res.stderr == "" and res.returncode == 141


def test_perceive_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    src = write(tmp_path, "in.png", photo("chelsea")[:48, :64])
    res = _closed_pipe("perceive", str(src), "--offline")
    assert res.stderr == "" and res.returncode == 141


def test_profiles_head_pipeline_has_empty_stderr() -> None:
    cmd = " ".join(f"'{a}'" for a in CLI) + " profiles | head -1"
    res = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and res.stderr == ""
    assert len(res.stdout.splitlines()) == 1


def test_light_profile_catalogue_matches_the_loader() -> None:
    from fourkagent.profiles import loader

    assert cli_checks.profile_catalogue() == [(p.name, p.description) for p in loader.list_profiles()]
    for name in ("FastGen4K-P", "fastgen4k_p", "EXPSR-S2-F"):
        cli_checks.check_profile(name)
        loader.load_profile(name)


def test_the_cli_checks_are_the_runs_own() -> None:
    """One implementation: the light checks are the functions and constants the run uses (``fourkagent.paths``)."""
    from fourkagent import imageio, imagewrite, paths
    from fourkagent.profiles import loader

    assert cli_checks.check_output_path is imageio.check_output_path is paths.check_output_path
    assert cli_checks.check_not_input is imageio.check_not_input is paths.check_not_input
    assert imageio.OUTPUT_FORMATS is imagewrite.OUTPUT_FORMATS is paths.OUTPUT_FORMATS
    assert cli_checks.DEFAULT_PROFILE is loader.DEFAULT_PROFILE is paths.DEFAULT_PROFILE


def test_light_checks_say_what_the_run_says(world: dict[str, Path]) -> None:
    from fourkagent import imageio

    d = world["dir"]
    for path in (d / "nope.png", world["adir"], world["empty"], world["good"]):
        light = _message(cli_checks.check_input, path)
        assert light is None or light == _message(imageio.read_image, path)
    assert _message(cli_checks.check_input, world["good"]) is None
    from fourkagent.profiles import load_profile

    for spec in ("NoSuchProfile", str(d / "p.yaml"), str(world["adir"])):
        assert _message(cli_checks.check_profile, spec) == _message(load_profile, spec)


def _message(fn: object, *args: object) -> str | None:
    try:
        fn(*args)  # type: ignore[operator]
    except FourKError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def test_resume_of_an_unknown_run_is_one_line_before_any_heavy_import(tmp_path: Path) -> None:
    code, loaded, err = _harness("--home", str(tmp_path), "restore", "--resume", "nope")
    assert code == 2 and err.strip() == f"4kagent: error: no run with id 'nope' in {tmp_path}"
    assert loaded == []
    assert not (tmp_path / "checkpoints.sqlite").exists()  # nothing created by a refused resume


def test_light_resume_check_agrees_with_the_checkpointer(tmp_path: Path) -> None:
    from langgraph.checkpoint.base import empty_checkpoint

    from fourkagent.errors import RunError
    from fourkagent.runner import open_checkpointer

    with open_checkpointer(tmp_path) as saver:
        saver.put({"configurable": {"thread_id": "kept", "checkpoint_ns": ""}}, empty_checkpoint(), {}, {})
    cli_checks.check_run_exists(tmp_path, "kept")
    with pytest.raises(RunError, match="no run with id 'gone'"):
        cli_checks.check_run_exists(tmp_path, "gone")
    with pytest.raises(RunError, match="no run with id 'x'"):
        cli_checks.check_run_exists(tmp_path / "fresh-home", "x")
    (tmp_path / "file-home").write_text("")
    cli_checks.check_run_exists(tmp_path / "file-home", "x")  # left to the run, which says what is wrong
