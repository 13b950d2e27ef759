"""`langgraph dev` serves graph ``fourkagent``: schemas, a streamed run over the SDK, and plan review.

Also checks the same custom progress events in-process with ``graph.stream``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from conftest import photo, write
from fourkagent.graph import build_graph

ROOT = Path(__file__).resolve().parent.parent
OFFLINE_ENV = {"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGGRAPH_NO_VERSION_CHECK": "true", "LANGSMITH_TRACING": "false"}
TOOL_EVENTS = {"tool_start", "tool_end", "candidate_scored"}


def _missing_server_packages() -> list[str]:
    return [m for m in ("langgraph_cli", "langgraph_api", "langgraph_runtime_inmem", "langgraph_sdk")
            if importlib.util.find_spec(m) is None]


@pytest.fixture
def small_photo(tmp_path: Path) -> Path:
    """A 64×48 crop of a real photo."""
    return write(tmp_path, "small.png", photo()[40:88, 180:244])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and its workers: signal its process group, by its pid."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``langgraph dev`` on 127.0.0.1 and a free port, FOURKAGENT_HOME in a temporary directory."""
    missing = _missing_server_packages()
    if missing:
        pytest.skip(f"langgraph-cli[inmem] / langgraph-sdk not installed (missing {', '.join(missing)}); "
                    "pip install -e '.[dev]'")
    import httpx

    tmp = tmp_path_factory.mktemp("lgserver")
    port = _free_port()
    env = {**os.environ, **OFFLINE_ENV, "FOURKAGENT_HOME": str(tmp / "home")}
    log = (tmp / "server.log").open("wb")
    cmd = [sys.executable, "-c", "from langgraph_cli.cli import cli; cli()", "dev", "--no-browser", "--no-reload",
           "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"langgraph dev exited ({proc.returncode}):\n{(tmp / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"langgraph dev not up after 90 s:\n{(tmp / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        _stop(proc)
        log.close()


def _size(path: str | Path) -> tuple[int, int]:
    with PILImage.open(path) as im:
        return im.size


def test_schemas_are_clean_forms(server: str) -> None:
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server)
    (assistant,) = client.assistants.search(graph_id="fourkagent")
    schemas = client.assistants.get_schemas(assistant["assistant_id"])
    assert set(schemas["input_schema"]["properties"]) == {"input_path", "output_path", "profile", "options"}
    assert schemas["input_schema"]["required"] == ["input_path"]
    assert set(schemas["output_schema"]["properties"]) == {"output_path", "report_path", "summary"}
    ctx = schemas["context_schema"]["properties"]
    assert {"home", "model_dir", "vlm_base_url", "threads", "review_plan", "review_compromise"} <= set(ctx)
    assert all(field.get("description") for field in ctx.values())


def test_streamed_run_over_the_sdk(server: str, small_photo: Path, tmp_path: Path) -> None:
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server)
    thread = client.threads.create()
    out = tmp_path / "out.png"
    inp = {"input_path": str(small_photo), "output_path": str(out), "profile": "ExpSR-s4-F"}
    nodes: list[str] = []
    custom: list[dict[str, Any]] = []
    for part in client.runs.stream(thread["thread_id"], "fourkagent", input=inp, stream_mode=["updates", "custom"]):
        assert part.event != "error", part.data
        if part.event == "updates":
            nodes += list(part.data)
        elif part.event == "custom":
            custom.append(part.data)
    assert nodes[:2] == ["perceive", "plan"] and nodes[-1] == "finalize" and {"execute", "reflect"} <= set(nodes)
    assert TOOL_EVENTS <= {e.get("event") for e in custom}
    scored = [e for e in custom if e.get("event") == "candidate_scored"]
    assert all(isinstance(e["score"], float) for e in scored)
    state = client.threads.get_state(thread["thread_id"])
    assert not state["next"]
    values = state["values"]
    assert values["output_path"] == str(out) and out.exists()
    assert _size(out) == (4 * 64, 4 * 48)
    report = json.loads(Path(values["report_path"]).read_text())
    assert [t["step"] for t in report["trajectory"]] == ["super-resolution"]
    assert {e["tool"] for e in scored} == {c["tool"] for c in report["trajectory"][0]["candidates"]}


def test_plan_review_over_the_sdk(server: str, small_photo: Path, tmp_path: Path) -> None:
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=server)
    tid = client.threads.create()["thread_id"]
    out = tmp_path / "reviewed.png"
    inp = {"input_path": str(small_photo), "output_path": str(out), "profile": "ExpSR-s4-F",
           "options": {"review_plan": True, "threshold": 0.0}}
    client.runs.wait(tid, "fourkagent", input=inp)
    state = client.threads.get_state(tid)
    assert state["next"] == ["plan"] and not out.exists()
    (intr,) = state["interrupts"]
    assert intr["value"]["type"] == "plan_review" and intr["value"]["agenda"] == ["super-resolution"]
    client.runs.wait(tid, "fourkagent", command={"resume": ["denoising", "super-resolution"]})
    values = client.threads.get_state(tid)["values"]
    report = json.loads(Path(values["report_path"]).read_text())
    assert [t["step"] for t in report["trajectory"]] == ["denoising", "super-resolution"]
    assert _size(out) == (4 * 64, 4 * 48)


def test_custom_events_in_process(small_photo: Path, tmp_path: Path) -> None:
    graph = build_graph()
    inp = {"input_path": str(small_photo), "output_path": str(tmp_path / "o.png"), "profile": "ExpSR-s4-F"}
    modes: dict[str, list[Any]] = {"updates": [], "custom": []}
    for mode, chunk in graph.stream(inp, stream_mode=["updates", "custom"]):
        modes[mode].append(chunk)
    events = [c["event"] for c in modes["custom"]]
    assert TOOL_EVENTS | {"plan"} <= set(events)
    assert events.index("tool_start") < events.index("tool_end") < events.index("candidate_scored")
    plan_update = next(u["plan"] for u in modes["updates"] if "plan" in u)
    assert plan_update["agenda"] == ["super-resolution"]  # in-process, updates carry the whole node update
