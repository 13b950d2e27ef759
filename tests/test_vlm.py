"""VLM perceiver and planner against a local OpenAI-compatible stub (real HTTP through langchain-openai)."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from fourkagent.context import Context
from fourkagent.imaging import Image
from fourkagent.perception import vlm
from fourkagent.perception.offline import perceive_offline
from fourkagent.planning.order import PAIRWISE_EXPERIENCE

from conftest import photo, write

pytest.importorskip("langchain_openai")

Reply = tuple[int, str, float]  # HTTP status, message content, delay in seconds
HAZE = {"degradations": [{"kind": "haze", "severity": "high", "confidence": 0.9, "evidence": "milky veil"},
                         {"type": "Low_Light", "severity": "Low", "confidence": 80},
                         {"kind": "old photo", "severity": "high", "confidence": "sure"}],
        "image_description": "An astronaut in a white suit in front of a flag."}


class Stub:
    """A chat.completions endpoint on 127.0.0.1 that records requests and answers via ``responder``."""

    def __init__(self, responder: Callable[[dict[str, Any]], Reply]) -> None:
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append({"path": self.path, "body": body})
                status, content, delay = stub.responder(body)
                time.sleep(delay)
                payload = json.dumps({
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body.get("model"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                } if status == 200 else {"error": {"message": content, "type": "server_error"}}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timeout test)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def ctx(self, **kw: Any) -> Context:
        return Context(vlm_base_url=self.url, vlm_api_key="x", vlm_model="stub-vlm", iqa_metrics="niqe", **kw)


def is_perception(body: dict[str, Any]) -> bool:
    return any(isinstance(m["content"], list) for m in body["messages"])


@pytest.fixture(autouse=True)
def hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def stub() -> Iterator[Callable[[Callable[[dict[str, Any]], Reply]], Stub]]:
    made: list[Stub] = []

    def start(responder: Callable[[dict[str, Any]], Reply]) -> Stub:
        made.append(Stub(responder))
        return made[-1]

    yield start
    for s in made:
        s.close()


@pytest.fixture(scope="module")
def img() -> Image:
    return photo()[:300, :420].copy()  # 420×300 real photo


@pytest.fixture(scope="module")
def offline(img: Image) -> dict[str, Any]:
    return perceive_offline(img, "niqe,musiq") | {"perceiver": "offline"}


def test_perception_sends_image_and_iqa_and_uses_the_answer(stub: Any, offline: dict[str, Any]) -> None:
    big = photo()  # 512×512 → must be sent at ≤ 512
    s = stub(lambda body: (200, "Here you go:\n```json\n" + json.dumps(HAZE) + "\n```", 0.0))
    p = vlm.perceive_vlm(big, offline, s.ctx())
    assert p["perceiver"] == "vlm" and "perceiver_note" not in p
    assert p["description"] == HAZE["image_description"]
    sev = {d["kind"]: d["severity"] for d in p["degradations"]}
    assert sev["haze"] == "high" and sev["dark"] == "low" and sev["noise"] == "very low"
    assert [d["kind"] for d in p["degradations"] if d["present"]] == ["haze"]
    assert p["vlm"]["ignored_kinds"] == ["old photo"]
    haze = next(d for d in p["degradations"] if d["kind"] == "haze")
    assert haze["confidence"] == 0.9 and haze["evidence"]["vlm"] == "milky veil"
    dark = next(d for d in p["degradations"] if d["kind"] == "dark")
    assert dark["confidence"] == 0.8 and not dark["present"]  # alias, synonym, case and percentage normalised
    assert next(d for d in p["degradations"] if d["kind"] == "rain")["confidence"] is None  # not mentioned
    assert haze["evidence"]["offline"].startswith(next(d for d in offline["degradations"] if d["kind"] == "haze")["severity"])
    assert p["offline"]["degradations"] == offline["degradations"] and p["iqa"] == offline["iqa"]

    (req,) = s.requests
    assert req["path"] == "/v1/chat/completions" and req["body"]["model"] == "stub-vlm"
    blocks = next(m["content"] for m in req["body"]["messages"] if isinstance(m["content"], list))
    image = next(b for b in blocks if b["type"] == "image_url")["image_url"]["url"]
    assert image.startswith("data:image/png;base64,")
    sent = PILImage.open(io.BytesIO(base64.b64decode(image.split(",", 1)[1])))
    assert sent.size == (512, 512)
    text = next(b for b in blocks if b["type"] == "text")["text"]
    assert f"NIQE: {offline['iqa']['niqe']:.4f}" in text and "MUSIQ: unavailable" in text
    assert req["body"]["response_format"]["type"] == "json_schema"


def test_images_are_downscaled_to_512(img: Image) -> None:
    url = vlm.image_data_url(photo().repeat(2, 0).repeat(2, 1))  # 1024×1024
    assert PILImage.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size == (512, 512)
    assert PILImage.open(io.BytesIO(base64.b64decode(vlm.image_data_url(img).split(",", 1)[1]))).size == (420, 300)


@pytest.mark.parametrize("content, reason", [
    ("The image looks hazy to me.", "no JSON object"),
    ('{"degradations": [{"kind": "haze", "severity": "extreme"}], "image_description": "x"}', "severity"),
    ('{"degradations": [{"kind": "haze", "severity": "high"}, ], "image_description": "x"}', "not valid JSON"),
    ('{"degradations": [{"kind": "haze", "severity": "high"}]}', "image_description"),
])
def test_malformed_answers_fall_back_to_offline(stub: Any, img: Image, offline: dict[str, Any],
                                                content: str, reason: str) -> None:
    s = stub(lambda body: (200, content, 0.0))
    p = vlm.perceive_vlm(img, offline, s.ctx())
    assert p["perceiver"] == "offline" and p["degradations"] == offline["degradations"]
    assert reason in p["perceiver_note"] and "used the offline detectors" in p["perceiver_note"]


def test_http_500_falls_back(stub: Any, img: Image, offline: dict[str, Any]) -> None:
    s = stub(lambda body: (500, "internal error", 0.0))
    p = vlm.perceive_vlm(img, offline, s.ctx())
    assert p["perceiver"] == "offline" and "HTTP 500" in p["perceiver_note"]
    assert len(s.requests) == 1 + vlm.MAX_RETRIES


def test_timeout_falls_back(stub: Any, img: Image, offline: dict[str, Any]) -> None:
    s = stub(lambda body: (200, json.dumps(HAZE), 3.0))
    t0 = time.perf_counter()
    p = vlm.perceive_vlm(img, offline, s.ctx(vlm_timeout=0.4))
    assert time.perf_counter() - t0 < 2.9  # gave up before the stub answered
    assert p["perceiver"] == "offline" and "timed out after 0.4 s" in p["perceiver_note"]


def test_unreachable_endpoint_falls_back(img: Image, offline: dict[str, Any]) -> None:
    ctx = Context(vlm_base_url="http://127.0.0.1:9/v1", vlm_api_key="x", vlm_timeout=2)
    p = vlm.perceive_vlm(img, offline, ctx)
    assert p["perceiver"] == "offline" and "cannot connect to http://127.0.0.1:9/v1" in p["perceiver_note"]


def test_server_without_response_format_is_asked_again(stub: Any, img: Image, offline: dict[str, Any]) -> None:
    s = stub(lambda body: (400, "response_format not supported", 0.0) if "response_format" in body
             else (200, json.dumps(HAZE), 0.0))
    p = vlm.perceive_vlm(img, offline, s.ctx())
    assert p["perceiver"] == "vlm" and len(s.requests) == 2


def test_not_configured_keeps_offline_with_note(img: Image, offline: dict[str, Any], monkeypatch: Any) -> None:
    monkeypatch.delenv("FOURKAGENT_VLM_BASE_URL", raising=False)
    p = vlm.perceive_vlm(img, offline, Context())
    assert p["perceiver"] == "offline" and "FOURKAGENT_VLM_BASE_URL" in p["perceiver_note"]


STEPS = ["denoising", "dehazing", "super-resolution"]


def plan_stub(stub: Any, plan: list[str]) -> Stub:
    return stub(lambda body: (200, json.dumps({"thought": "because", "plan": plan}), 0.0))


def test_vlm_order_used_when_a_valid_permutation(stub: Any) -> None:
    s = plan_stub(stub, ["dehazing", "denoising", "super-resolution"])
    exp = vlm.experience_text(PAIRWISE_EXPERIENCE)
    order = vlm.vlm_order(STEPS, "a photo", [{"kind": "haze", "severity": "high", "present": True}], exp, (), s.ctx())
    assert order == ["dehazing", "denoising", "super-resolution"]
    prompt = s.requests[0]["body"]["messages"][-1]["content"]
    assert json.dumps(STEPS) in prompt and "haze (high)" in prompt and "a photo" in prompt
    assert "deraining before super-resolution fails 14% of the time" in prompt and "must not begin" not in prompt


@pytest.mark.parametrize("plan", [
    ["dehazing", "super-resolution"],                                  # a step missing
    ["dehazing", "denoising", "super-resolution", "super-resolution"],  # a step repeated
    ["dehazing", "deraining", "super-resolution"],                      # a step not on the agenda
])
def test_vlm_order_rejected_when_not_a_permutation(stub: Any, plan: list[str]) -> None:
    s = plan_stub(stub, plan)
    order, note = vlm.vlm_order_explained(STEPS, "a photo", [], "", (), s.ctx())
    assert order is None and "not a permutation" in note


def test_vlm_order_must_avoid_failed_first_steps(stub: Any) -> None:
    s = plan_stub(stub, ["dehazing", "denoising", "super-resolution"])
    assert vlm.vlm_order(STEPS, "a photo", [], "", {"dehazing"}, s.ctx()) is None
    prompt = s.requests[0]["body"]["messages"][-1]["content"]
    assert "began with dehazing" in prompt and "must not begin with dehazing" in prompt
    s2 = plan_stub(stub, ["denoising", "dehazing", "super-resolution"])
    assert vlm.vlm_order(STEPS, "a photo", [], "", {"dehazing"}, s2.ctx()) == ["denoising", "dehazing", "super-resolution"]


def test_vlm_order_repeated_sr_steps_count(stub: Any) -> None:
    steps = ["denoising", "super-resolution", "super-resolution"]
    s = plan_stub(stub, ["super-resolution", "denoising", "super-resolution"])
    assert vlm.vlm_order(steps, "x", [], "", (), s.ctx()) == ["super-resolution", "denoising", "super-resolution"]


def classical_tools() -> Any:
    from fourkagent.tools.base import ToolRegistry
    from fourkagent.tools.registry import MAIN_REGISTRY

    return ToolRegistry([t for t in MAIN_REGISTRY if t.spec.backend == "classical"])


@pytest.mark.parametrize("plan, planner, first", [
    (["super-resolution", "denoising"], "vlm", "super-resolution"),     # valid: followed
    (["super-resolution", "deraining"], "offline", "denoising"),        # not a permutation: offline order
])
def test_end_to_end_run_follows_the_vlm(stub: Any, tmp_path: Path, plan: list[str], planner: str, first: str) -> None:
    """A clean photo; the stub says "noise: high" and proposes an order: the run does what the VLM said."""
    from fourkagent.runner import run

    answer = {"degradations": [{"kind": "noise", "severity": "high"}], "image_description": "An astronaut."}
    s = stub(lambda body: (200, json.dumps(answer if is_perception(body) else {"plan": plan}), 0.0))
    src = write(tmp_path, "clean.png", photo()[100:164, 200:264])
    res = run(str(src), str(tmp_path / "out.png"), "GenSR-s4-P", context=s.ctx(), options={"threshold": -1e9},
              registry=classical_tools())
    report = json.loads(Path(res["report_path"]).read_text())
    p = report["perception"]
    assert p["perceiver"] == "vlm" and p["planner"] == planner and p["description"] == "An astronaut."
    assert not any(d["present"] for d in p["offline"]["degradations"] if d["kind"] == "noise")
    assert sorted(report["steps"]) == ["denoising", "super-resolution"]
    assert [t["step"] for t in report["trajectory"]] == [first, *({"denoising", "super-resolution"} - {first})]
    assert [is_perception(r["body"]) for r in s.requests][:2] == [True, False]
    assert report["output"]["size"] == [256, 256]


def test_cli_perceive_json_uses_the_vlm(stub: Any, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    s = stub(lambda body: (200, json.dumps(HAZE if is_perception(body) else {"plan": ["dehazing", "super-resolution"]}), 0.0))
    src = write(tmp_path, "clean.png", photo()[:200, :300])
    env = dict(os.environ, FOURKAGENT_VLM_BASE_URL=s.url, FOURKAGENT_VLM_API_KEY="x", FOURKAGENT_IQA_METRICS="niqe,musiq")
    proc = subprocess.run([sys.executable, "-m", "fourkagent.cli", "perceive", str(src), "-p", "GenSR-s4-P", "--json"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["perceiver"] == "vlm" and out["description"] == HAZE["image_description"]
    assert {"kind", "severity", "confidence", "evidence"} <= set(out["degradations"][0])
    assert isinstance(out["iqa"]["niqe"], float) and "unavailable" in out["iqa"]["musiq"]
    assert out["agenda"] == ["dehazing", "super-resolution"] and out["planner"] == "vlm"


def test_end_to_end_falls_back_when_the_vlm_is_down(tmp_path: Path) -> None:
    from fourkagent.runner import run

    src = write(tmp_path, "clean.png", photo()[100:164, 200:264])
    ctx = Context(vlm_base_url="http://127.0.0.1:9/v1", vlm_api_key="x", vlm_timeout=2, iqa_metrics="niqe")
    res = run(str(src), str(tmp_path / "out.png"), "GenSR-s4-P", context=ctx, registry=classical_tools())
    p = json.loads(Path(res["report_path"]).read_text())["perception"]
    assert p["perceiver"] == "offline" and "VLM perceiver failed" in p["perceiver_note"]
    assert "planner" not in p  # the planner does not wait for a VLM that already failed
