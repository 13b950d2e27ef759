"""Every registered tool runs on a real image with the right size; wrappers work for LangChain."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import photo

from fourkagent import degrade
from fourkagent.errors import ToolError
from fourkagent.imaging import psnr
from fourkagent.state.artifacts import ArtifactStore
from fourkagent.tools.base import DuplicateToolError, Tool, ToolRegistry, ToolSpec
from fourkagent.tools.classical import brighten, denoise
from fourkagent.tools.langchain import structured_tools
from fourkagent.tools.registry import MAIN_REGISTRY

SMALL = photo("coffee")[100:164, 200:280]


@pytest.mark.parametrize("tool", [t for t in MAIN_REGISTRY if t.unavailable_reason() is None], ids=lambda t: t.name)
def test_tool_output_shape(tool: Tool) -> None:
    out = tool(SMALL)
    s = tool.spec.scale
    assert out.shape == (SMALL.shape[0] * s, SMALL.shape[1] * s, 3) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("fn", [denoise.nlm, denoise.wavelet])
def test_denoisers_improve_psnr(fn) -> None:
    clean = photo("astronaut")[:256, :256]
    noisy = degrade.add_noise(clean, 20, seed=1)
    assert psnr(fn(noisy), clean) > psnr(noisy, clean) + 3


@pytest.mark.parametrize("fn", [brighten.auto_levels, brighten.clahe, brighten.adaptive_gamma, brighten.constant_shift])
def test_brighteners_improve_dark_photo(fn) -> None:
    clean = photo("chelsea")
    dark = degrade.darken(clean, 0.35)
    assert psnr(fn(dark), clean) > psnr(dark, clean) + 1


def test_auto_levels_keeps_a_black_sky_black() -> None:
    sky = photo("hubble_deep_field")[:256, :256]  # mostly black background with galaxies
    dark = degrade.darken(sky, 0.35)
    out = brighten.auto_levels(dark)
    assert psnr(out, sky) > psnr(dark, sky) + 3
    background = sky.max(axis=2) < np.percentile(sky.max(axis=2), 40)
    assert out.max(axis=2)[background].mean() < 0.15  # a whole-frame mid-grey target would lift it to ~0.4


def test_broken_tools_raise_tool_error() -> None:
    nan = Tool(ToolSpec("nan", "denoising", "returns NaN"), lambda im: im * np.nan)
    boom = Tool(ToolSpec("boom", "denoising", "raises"), lambda im: 1 / 0)
    shape = Tool(ToolSpec("shape", "denoising", "wrong shape"), lambda im: im[1:])
    for t in (nan, boom, shape):
        with pytest.raises(ToolError):
            t(SMALL)


def test_registry_rejects_duplicates_atomically() -> None:
    reg = ToolRegistry()
    a = Tool(ToolSpec("a", "denoising", "a"), lambda im: im)
    with pytest.raises(DuplicateToolError):
        reg.add(a, a)
    assert len(reg) == 0


def test_structured_tool_creates_artifact(tmp_path) -> None:
    store = ArtifactStore(tmp_path)
    aid = store.put(SMALL)
    tools = {t.name: t for t in structured_tools(MAIN_REGISTRY, store)}
    res = tools["sr_lanczos_x2"].invoke({"artifact_id": aid})
    assert (res["width"], res["height"]) == (SMALL.shape[1] * 2, SMALL.shape[0] * 2)
    assert store.path(res["artifact_id"]).exists()
    assert "error" in tools["denoise_nlm"].invoke({"artifact_id": "0" * 64})


def test_fake_tool_calling_model_calls_a_wrapped_tool(tmp_path) -> None:
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
    from langchain_core.messages import AIMessage, HumanMessage

    store = ArtifactStore(tmp_path)
    aid = store.put(SMALL)
    tools = structured_tools(MAIN_REGISTRY, store)

    class Scripted(FakeMessagesListChatModel):
        def bind_tools(self, tools, **kwargs):  # noqa: ANN001, ANN003, ANN201
            return self

    call = {"name": "sr_backprojection_x2", "args": {"artifact_id": aid}, "id": "call-1", "type": "tool_call"}
    model = Scripted(responses=[AIMessage(content="", tool_calls=[call])]).bind_tools(tools)
    ai = model.invoke([HumanMessage(content="make it twice as large")])
    by_name = {t.name: t for t in tools}
    (tc,) = ai.tool_calls
    out = by_name[tc["name"]].invoke(tc)  # a ToolCall in, a ToolMessage out, as an agent loop does
    import json

    result = json.loads(out.content)
    assert result["artifact_id"] != aid and store.path(result["artifact_id"]).exists()
    assert store.get(result["artifact_id"]).shape == (SMALL.shape[0] * 2, SMALL.shape[1] * 2, 3)
