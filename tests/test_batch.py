"""Batch jobs: inputs and thread ids, byte-identical outputs to single runs, failures kept apart, a driver SIGKILLed
mid-job finishing on the rerun without recomputing, and a 2-process Dask cluster."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import photo
from PIL import Image as PILImage
from test_kill_resume import CLI, classical_registry
from test_langgraph_server import server  # noqa: F401 - the `langgraph dev` fixture
from test_report_html import CHROMIUM, _chromium, _js_errors

from _postgres import postgres_server, why_unavailable
from fourkagent.batch import collect, read_job, run_batch
from fourkagent.batch.engine import profile_tag
from fourkagent.batch.job import JOB_FILE
from fourkagent.context import Context
from fourkagent.devices import cpu_count
from fourkagent.errors import FourKError
from fourkagent.graph.builder import build_graph
from fourkagent.imaging import to_uint8
from fourkagent.imaging import resize
from fourkagent.runner import open_checkpointer, run
from fourkagent.tools.base import Tool, ToolRegistry, ToolSpec

CROPS = {"a.png": ("astronaut", 40, 180), "sub/b.png": ("coffee", 100, 200), "sub/deep/c.jpg": ("chelsea", 60, 120),
         "d.tif": ("astronaut", 300, 300), "e.png": ("coffee", 200, 300), "sub/f.webp": ("chelsea", 150, 200)}
"""Six small photos (48×56 crops) in a tree with several formats; the first four are the sequential tests' set."""


def _profile(root: Path) -> Path:
    """ExpSR-s2-F with offline perception: ×2, SR only, the classical tools (about a second an image)."""
    data = yaml.safe_load((Path(__file__).parents[1] / "fourkagent/profiles/data/ExpSR-s2-F.yaml").read_text())
    path = root / "batch.yaml"
    path.write_text(yaml.safe_dump(data | {"name": "BatchTest", "perception_agent": "offline"}))
    return path


def _images(root: Path, names: list[str]) -> Path:
    """Write the named crops under ``root/in`` (the same bytes every time)."""
    src = root / "in"
    for name in names:
        kind, y, x = CROPS[name]
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        crop = to_uint8(photo(kind)[y : y + 48, x : x + 56])
        PILImage.fromarray(crop).save(path, **({"quality": 95} if path.suffix == ".jpg" else {}))
    return src


@pytest.fixture(autouse=True)
def _light(monkeypatch: pytest.MonkeyPatch) -> None:
    """NIQE only, no experience store (plans must not depend on the order images ran), classical tools."""
    monkeypatch.setenv("FOURKAGENT_IQA_METRICS", "niqe")
    monkeypatch.setenv("FOURKAGENT_EXPERIENCE", "0")
    monkeypatch.setattr("fourkagent.tools.registry.MAIN_REGISTRY", classical_registry())


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Each image restored alone by ``runner.run`` (in-process, its own home): output bytes by relative path."""
    root = tmp_path_factory.mktemp("single")
    src, prof = _images(root, list(CROPS)), _profile(root)
    out: dict[str, bytes] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FOURKAGENT_IQA_METRICS", "niqe")
        mp.setenv("FOURKAGENT_EXPERIENCE", "0")
        for i, name in enumerate(CROPS):
            dest = root / f"out{i}.png"
            run(str(src / name), str(dest), str(prof), context=Context(home=str(root / "home")),
                registry=classical_registry())
            out[str(Path(name).with_suffix(".png"))] = dest.read_bytes()
    return out


def _outputs(out_dir: Path, names: list[str]) -> dict[str, bytes]:
    return {str(Path(n).with_suffix(".png")): (out_dir / n).with_suffix(".png").read_bytes() for n in names}


def _node_counts(home: str, thread: str, url: str = "") -> dict[str, int]:
    """How many times each node's work was committed to a thread's checkpoints."""
    with open_checkpointer(home, url) as saver:
        values = build_graph(saver).get_state({"configurable": {"thread_id": thread}}).values
    counts: dict[str, int] = {}
    for e in values.get("events", []):
        if set(e) == {"node", "seconds"}:
            counts[e["node"]] = counts.get(e["node"], 0) + 1
    return counts


def test_collect_mirrors_the_tree_and_ids_follow_content(tmp_path: Path) -> None:
    src = _images(tmp_path, ["a.png", "sub/b.png", "sub/deep/c.jpg"])
    (src / "notes.txt").write_text("not an image")
    tag = profile_tag("ExpSR-s2-F")
    items = collect([str(src)], tmp_path / "out", "j1", tag)
    assert [i.rel for i in items] == ["a.png", "sub/b.png", "sub/deep/c.jpg"]  # the text file is not picked up
    assert [Path(i.output) for i in items] == [tmp_path / "out" / p for p in ("a.png", "sub/b.png", "sub/deep/c.png")]
    assert all(i.thread_id.startswith("j1-") and i.thread_id.endswith(tag) for i in items)
    # a glob and a file: the root is their common folder; the same bytes elsewhere are the same thread
    (src / "copy").mkdir()
    (src / "copy" / "x.png").write_bytes((src / "a.png").read_bytes())
    again = collect([str(src / "*.png"), str(src / "copy" / "x.png")], tmp_path / "o2", "j1", tag)
    assert [i.rel for i in again] == ["a.png", "copy/x.png"]
    assert again[0].thread_id == items[0].thread_id and again[1].thread_id == items[0].thread_id + "-2"
    other_profile = collect([str(src / "a.png")], tmp_path / "o3", "j1", profile_tag("ExpSR-s4-F"))
    assert other_profile[0].thread_id != items[0].thread_id
    (src / "empty.png").write_bytes(b"")
    assert collect([str(src / "empty.png")], tmp_path / "o4", "j1", tag)[0].error.endswith("empty file")
    (src / "sub" / "link.png").symlink_to(tmp_path / "in" / "a.png")  # a link in the tree: mirrored where it is
    linked = collect([str(src / "sub")], tmp_path / "o7", "j1", tag)
    assert [i.rel for i in linked] == ["b.png", "deep/c.jpg", "link.png"] and linked[2].thread_id == items[0].thread_id
    for bad, out in (([str(src / "nothing-*.png")], tmp_path / "o5"), ([str(src)], src / "results"),
                     ([str(src / "missing.png")], tmp_path / "o6")):
        with pytest.raises(FourKError):
            collect(bad, out, "j1", tag)


def test_sequential_job_equals_single_runs_and_rerun_skips(tmp_path: Path, reference: dict[str, bytes]) -> None:
    names = list(CROPS)[:4]
    src, prof = _images(tmp_path, names), _profile(tmp_path)
    out = tmp_path / "out"
    job = run_batch([str(src)], out, str(prof))
    assert job.counts() == {"done": 4, "failed": 0, "pending": 0} and job.engine == "sequential"
    assert _outputs(out, names) == {k: reference[k] for k in _outputs(out, names)}
    saved = read_job(out / JOB_FILE)
    for rec in saved.images:
        assert rec.action == "ran" and rec.steps and rec.steps[0].startswith("super-resolution")
        assert rec.final_q is not None and rec.seconds is not None and rec.seconds > 0
        assert (out / rec.report_html).is_file() and all((out / t).is_file() for t in rec.thumbs)
    index = (out / "index.html").read_text()
    assert "Failed" not in index and all(f'href="{Path(n).with_suffix(".png").as_posix()}"' in index for n in names)
    stamps = {n: (out / n).with_suffix(".png").stat().st_mtime_ns for n in names}
    again = run_batch([str(src)], out, str(prof))
    assert [r.action for r in again.images] == ["skipped"] * 4
    assert {n: (out / n).with_suffix(".png").stat().st_mtime_ns for n in names} == stamps
    home = os.environ["FOURKAGENT_HOME"]
    assert all(_node_counts(home, r.thread_id)["perceive"] == 1 for r in again.images)


def test_corrupt_and_hostile_inputs_fail_alone(tmp_path: Path) -> None:
    src, prof = _images(tmp_path, ["a.png", "sub/b.png", "e.png"]), _profile(tmp_path)
    (src / "broken.png").write_bytes((src / "a.png").read_bytes()[:60])  # a truncated PNG
    (src / "empty.jpg").write_bytes(b"")
    (src / "fake.png").write_bytes(b"<html>not an image</html>")
    out = tmp_path / "out"
    out.mkdir()
    (out / "e.png").write_bytes(b"a file of the user's")  # never replaced without --overwrite
    proc = subprocess.run(CLI + ["batch", str(src), "-o", str(out), "-p", str(prof), "-q"], capture_output=True,
                          text=True, timeout=600, env=dict(os.environ))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    job = json.loads((out / JOB_FILE).read_text())
    status = {Path(i["input"]).name: i for i in job["images"]}
    assert {n: s["status"] for n, s in status.items()} == {
        "a.png": "done", "b.png": "done", "broken.png": "failed", "empty.jpg": "failed", "fake.png": "failed",
        "e.png": "failed"}
    assert status["empty.jpg"]["error"].endswith("empty file") and "already exists" in status["e.png"]["error"]
    assert (out / "e.png").read_bytes() == b"a file of the user's"
    for name in ("broken.png", "empty.jpg", "fake.png"):
        error = status[name]["error"]
        assert error and "\n" not in error and f"failed: {src / name}: " in proc.stdout
    assert job["counts"] == {"done": 2, "failed": 4, "pending": 0}
    index = (out / "index.html").read_text()
    assert index.index('id="failures"') < index.index('id="images"')
    assert (out / "a.png").is_file() and (out / "sub" / "b.png").is_file()
    assert sorted(p.name for p in src.rglob("*")) == sorted(["a.png", "sub", "b.png", "e.png", "broken.png",
                                                             "empty.jpg", "fake.png"])  # nothing added to the inputs


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install -y chromium)")
def test_index_page_renders_in_headless_chromium(tmp_path: Path) -> None:
    src, prof = _images(tmp_path, ["a.png", "sub/b.png"]), _profile(tmp_path)
    (src / "<i>odd & name.png").write_bytes(b"not a png")
    job = run_batch([str(src)], tmp_path / "out", str(prof))
    dom, err = _chromium(["--dump-dom"], tmp_path / "out" / "index.html", tmp_path)
    assert not _js_errors(err), _js_errors(err)
    assert 'data-thumbs="4 shown, 0 missing"' in dom  # before/after of both done images, found beside the page
    assert dom.index('id="failures"') < dom.index('id="images"') and "&lt;i&gt;odd &amp; name.png" in dom
    assert all(f'href="{r.report_html}"' in dom for r in job.images if r.status == "done")


def test_status_and_argument_errors(tmp_path: Path) -> None:
    src, prof = _images(tmp_path, ["a.png"]), _profile(tmp_path)
    run_batch([str(src)], tmp_path / "out", str(prof), job_id="holiday")
    ok = subprocess.run(CLI + ["batch", "--status", "holiday"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "holiday: 1 done, 0 failed, 0 pending of 1" in ok.stdout, ok.stderr
    by_dir = subprocess.run(CLI + ["batch", "--status", str(tmp_path / "out"), "--json"], capture_output=True,
                            text=True, timeout=120)
    assert json.loads(by_dir.stdout)["counts"]["done"] == 1
    for args, words in ((["--status", "nope"], "no job 'nope'"),
                        ([str(src), "-o", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:1"], "--checkpoint"),
                        ([str(src), "-o", str(tmp_path / "o"), "--workers", "0"], "at least 1"),
                        ([str(src), "-o", str(tmp_path / "o"), "--checkpoint", "sqlite:///x"], "postgresql"),
                        ([str(src), "-o", str(tmp_path / "o"), "--job", "a/b"], "bad job id"),
                        ([str(tmp_path / "none")], "-o OUT_DIR")):
        bad = subprocess.run(CLI + ["batch", *args], capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and words in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


@pytest.mark.slow
def test_driver_sigkill_then_rerun_recomputes_nothing(tmp_path: Path, reference: dict[str, bytes]) -> None:
    names = list(CROPS)[:4]
    src, prof = _images(tmp_path, names), _profile(tmp_path)
    out = tmp_path / "out"
    args = CLI + ["batch", str(src), "-o", str(out), "-p", str(prof), "-q"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ))
    finished_before: dict[str, int] = {}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            job = json.loads((out / JOB_FILE).read_text())
        except (OSError, ValueError):
            job = {"images": []}
        done = [i for i in job["images"] if i["status"] == "done"]
        if done:
            proc.send_signal(signal.SIGKILL)
            finished_before = {i["thread_id"]: Path(i["output"]).stat().st_mtime_ns for i in done}
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and 1 <= len(finished_before) < 4
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=600, env=dict(os.environ))
    assert rerun.returncode == 0, rerun.stderr
    job = read_job(out / JOB_FILE)
    assert job.finished and job.counts()["done"] == 4
    for rec in job.images:  # finished images untouched; the others ran once, or went on from their checkpoint
        if rec.thread_id in finished_before:
            assert rec.action == "skipped" and Path(rec.output).stat().st_mtime_ns == finished_before[rec.thread_id]
        counts = _node_counts(os.environ["FOURKAGENT_HOME"], rec.thread_id)
        assert counts["perceive"] == 1 and counts["finalize"] == 1, (rec.thread_id, counts)
    assert _outputs(out, names) == {k: reference[k] for k in _outputs(out, names)}


@pytest.mark.slow
def test_two_dask_worker_processes(tmp_path: Path, reference: dict[str, bytes],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FOURKAGENT_THREADS", "7")  # what a worker would use if the job did not share out the cores
    names = list(CROPS)
    src, prof = _images(tmp_path, names), _profile(tmp_path)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    out = tmp_path / "out"
    job = run_batch([str(src)], out, str(prof), workers=2, registry=classical_registry())
    assert job.engine == "dask-local" and job.workers == 2
    assert job.counts() == {"done": 6, "failed": 1, "pending": 0}
    assert _outputs(out, names) == reference
    per_worker = max(1, cpu_count() // 2)  # N workers share the cores instead of each taking all of them
    assert {json.loads((out / r.report_json).read_text())["runtime"]["threads"] for r in job.images if r.report_json} \
        == {per_worker}
    again = run_batch([str(src)], out, str(prof), workers=2, registry=classical_registry())
    assert sorted(r.action for r in again.images if r.status == "done") == ["skipped"] * 6


def _die_once(img: np.ndarray, marker: str) -> np.ndarray:
    """×2 Lanczos, but the first call (across processes: ``marker``) SIGKILLs its own worker process."""
    if not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return resize(img, (img.shape[1] * 2, img.shape[0] * 2), "lanczos")


@pytest.mark.slow
def test_worker_killed_mid_image_is_retried_from_its_checkpoint(tmp_path: Path) -> None:
    names = ["a.png", "sub/b.png", "e.png"]
    src, prof = _images(tmp_path, names), _profile(tmp_path)
    marker = tmp_path / "killed"
    killer = Tool(ToolSpec("sr_die_once", "super-resolution", "kills its worker once", scale=2),
                  functools.partial(_die_once, marker=str(marker)))
    job = run_batch([str(src)], tmp_path / "out", str(prof), workers=2, registry=ToolRegistry([killer]))
    assert marker.is_file() and int(marker.read_text()) != os.getpid()  # a worker died, not this process
    assert job.counts() == {"done": 3, "failed": 0, "pending": 0}, [r.error for r in job.images]
    actions = sorted(r.action for r in job.images)
    assert actions == ["ran", "ran", "resumed"]  # the killed image went on from its plan checkpoint on a new worker
    for rec in job.images:
        assert _node_counts(os.environ["FOURKAGENT_HOME"], rec.thread_id)["perceive"] == 1


_pg = why_unavailable()


@pytest.mark.slow
@pytest.mark.skipif(_pg is not None, reason=_pg or "")
def test_remote_scheduler_with_postgres_checkpoints(tmp_path: Path, reference: dict[str, bytes]) -> None:
    """``--scheduler`` plumbing against a scheduler this test starts; checkpoints go to PostgreSQL, not SQLite."""
    from dask.distributed import LocalCluster

    names = ["a.png", "sub/b.png"]
    src, prof = _images(tmp_path, names), _profile(tmp_path)
    home = os.environ["FOURKAGENT_HOME"]
    with postgres_server() as url, LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                                dashboard_address=None) as cluster:
        job = run_batch([str(src)], tmp_path / "out", str(prof), scheduler=cluster.scheduler_address,
                        checkpoint=url, registry=classical_registry())
        assert job.engine == "dask" and job.counts()["done"] == 2 and job.checkpoint == url
        assert _outputs(tmp_path / "out", names) == {k: reference[k] for k in _outputs(tmp_path / "out", names)}
        assert all(_node_counts(home, r.thread_id, url)["finalize"] == 1 for r in job.images)
        again = run_batch([str(src)], tmp_path / "out", str(prof), scheduler=cluster.scheduler_address,
                          checkpoint=url, registry=classical_registry())
        assert [r.action for r in again.images] == ["skipped", "skipped"]
        env = dict(os.environ, FOURKAGENT_CHECKPOINT_URL=url)  # restore --resume finds an image's thread there too
        res = subprocess.run(CLI + ["restore", "--resume", job.images[0].thread_id], capture_output=True, text=True,
                             timeout=300, env=env)
        assert res.returncode == 0 and f"output: {job.images[0].output}" in res.stdout, res.stderr
    assert not (Path(home) / "checkpoints.sqlite").exists()


@pytest.mark.slow
def test_sdk_recipe_in_the_docs_runs_one_thread_per_image(tmp_path: Path, server: str) -> None:
    """docs/batch.md's LangGraph SDK loop, run as written against ``langgraph dev``; run again, it starts nothing."""
    doc = (Path(__file__).parents[1] / "docs" / "batch.md").read_text()
    code = doc.split("## Over the LangGraph SDK")[1].split("```python\n")[1].split("```")[0]
    src, prof = _images(tmp_path, ["a.png", "sub/b.png"]), _profile(tmp_path)
    (src / "empty.png").write_bytes(b"")
    code = (code.replace("/abs/photos", str(src)).replace("/abs/out", str(tmp_path / "out"))
            .replace("http://127.0.0.1:2024", server).replace('"ExpSR-s4-F"', repr(str(prof)))
            .replace('"photos-job"', repr(f"sdk-{uuid.uuid4().hex[:8]}")))  # the server keeps threads across sessions
    first: dict[str, object] = {}
    exec(compile(code, "docs/batch.md", "exec"), first)
    assert len(first["runs"]) == 2  # type: ignore[arg-type]  # the empty file is never sent
    assert (tmp_path / "out" / "a.png").is_file() and (tmp_path / "out" / "sub" / "b.png").is_file()
    again: dict[str, object] = {}
    exec(compile(code, "docs/batch.md", "exec"), again)
    assert again["runs"] == []
