"""The paper scorer once its weights are pulled: detection of installed weights, the real metric factories
(pyiqa NIQE from a cache file, HPSv2.1 on a tiny open_clip model), and winner + rollback in a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fourkagent import degrade  # noqa: E402
from fourkagent.errors import MissingWeightsError, WeightsError  # noqa: E402
from fourkagent.models import store  # noqa: E402
from fourkagent.models.catalogue import metric_files  # noqa: E402
from fourkagent.scoring import paper  # noqa: E402
from fourkagent.scoring.paper import MIX_METRICS, PaperStepScorer, metric_mix  # noqa: E402
from tests.conftest import photo, scaling_registry, write  # noqa: E402


@pytest.fixture
def caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty torch-hub (pyiqa, CLIP) and Hugging Face caches in the test directory."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    paper.clear_cache()
    yield tmp_path
    paper.clear_cache()


def _fake_weights(*metrics: str) -> list[Path]:
    paths = [store.metric_path(m) for name in metrics for m in metric_files(name)]
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"fake")
    return paths


def test_installed_weights_are_detected_where_pull_puts_them(caches: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    needed = paper.needed()
    assert needed == ("hpsv2.1", "clipiqa+", "maniqa", "musiq", "niqe")
    assert all(paper.missing_files(n) for n in needed)
    msg = "; ".join(paper.missing_pieces())
    for n in needed:
        assert f"`4kagent models pull {n}`" in msg
    paths = _fake_weights(*needed)
    assert all(str(p).startswith(str(caches)) for p in paths)  # pyiqa's, CLIP's and the hub cache, all under the test dir
    assert {p.name for p in paths} >= {"HPS_v2.1_compressed.pt", "ckpt_koniq10k.pt", "niqe_modelparameters.mat",
                                       "musiq_koniq_ckpt-e95806b9.pth", "RN50.pt"}
    assert not any(paper.missing_files(n) for n in needed)
    assert "models pull" not in "; ".join(paper.missing_pieces())
    monkeypatch.setattr(paper, "missing_packages", lambda metric: [])
    paper.require_installed()  # everything present: no error
    next(p for p in paths if p.name == "ckpt_koniq10k.pt").unlink()
    with pytest.raises(MissingWeightsError) as info:
        paper.require_installed()
    text = str(info.value)
    assert "\n" not in text and "maniqa (`4kagent models pull maniqa`)" in text and "hpsv2.1" not in text
    paper.require_installed(with_metrics=False)  # the HPS-only variant does not need MANIQA


def test_missing_packages_are_named_with_pip_names(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda m, *a: None if m in ("open_clip", "hpsv2", "timm") else real(m, *a))
    assert paper.missing_packages("hpsv2.1") == ["open-clip-torch"]  # one of open_clip / hpsv2 is enough
    assert "timm" in paper.missing_packages("maniqa")


def _fixed_factories(monkeypatch: pytest.MonkeyPatch, calls: dict[str, int], level: float) -> None:
    """Metrics that are fixed functions of the image mean, shifted by ``level``."""

    def create_metric(name: str) -> Any:
        calls[name] = calls.get(name, 0) + 1
        a, b = {"clipiqa+": (0.5, 0.1), "maniqa": (-0.4, 0.6), "musiq": (30.0, 40.0), "niqe": (-4.0, 7.0)}[name]
        return lambda img: b + level + a * float(img.mean())

    def create_hps() -> Any:
        calls["hps"] = calls.get("hps", 0) + 1
        return lambda img, text: 0.2 + level + 0.1 * float(img.mean()) + (0.01 if text.startswith("A ") else 0.0)

    monkeypatch.setattr(paper, "create_metric", create_metric)
    monkeypatch.setattr(paper, "create_hps", create_hps)
    monkeypatch.setattr(paper, "missing_pieces", lambda with_metrics=True: [])


def _hand_q(m: float, level: float, prompt_bonus: float) -> float:
    vals = {"clipiqa+": 0.1 + level + 0.5 * m, "maniqa": 0.6 + level - 0.4 * m, "musiq": 40.0 + level + 30.0 * m,
            "niqe": 7.0 + level - 4.0 * m}
    return 0.2 + level + 0.1 * m + prompt_bonus + metric_mix(vals)


def test_loaded_scorer_picks_the_hand_computed_winner(caches: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: dict[str, int] = {}
    _fixed_factories(monkeypatch, calls, 0.0)
    means = {"dark": 0.2, "mid": 0.5, "bright": 0.8}
    step = PaperStepScorer("A cat on a sofa")
    for m in means.values():
        step.add(np.full((60, 90, 3), m, np.float32))
    got = dict(zip(means, (s.score for s in step.scores())))
    for name, m in means.items():
        assert got[name] == pytest.approx(_hand_q(m, 0.0, 0.01), abs=1e-5)
    assert max(got, key=got.get) == max(means, key=lambda n: _hand_q(means[n], 0.0, 0.01)) == "bright"
    comps = step.scores()[0].components
    assert set(comps) == {"hpsv2.1", *MIX_METRICS, "mix"}
    PaperStepScorer("")  # built once per process and device: the factories are not called again
    assert calls == {"clipiqa+": 1, "maniqa": 1, "musiq": 1, "niqe": 1, "hps": 1}


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: float) -> dict[str, Any]:
    """A two-step run with the paper scorer; reflect is pointed at it the way the patched node does."""
    from fourkagent.nodes import reflect
    from fourkagent.runner import run

    calls: dict[str, int] = {}
    _fixed_factories(monkeypatch, calls, level)
    paper.clear_cache()
    monkeypatch.setattr(reflect, "StepScorer", lambda inp, step, priority: PaperStepScorer(""), raising=False)

    reg = scaling_registry()
    src = write(tmp_path, "in.png", degrade.add_noise(photo()[100:164, 180:244], 10, seed=1))
    prof = {"upscale_to_4k": False, "require_sr_size": 1, "restore_option": ["denoising", "dehazing"],
            "scorer": "paper", "threshold": 0.5}
    res = run(str(src), str(tmp_path / f"out{level}.png"), prof, registry=reg)
    return json.loads(Path(res["report_path"]).read_text())


def test_run_keeps_the_best_and_rolls_back_below_threshold(tmp_path: Path, caches: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    good = _run(tmp_path, monkeypatch, 0.0)  # every Q ≈ 0.9-1.0: no rollback
    assert not good["rollbacks"] and not good["compromise"]
    for t in good["trajectory"]:
        scored = [c for c in t["candidates"] if not c.get("unchanged")]  # dn_keep returns its input: no candidate
        scores = {c["tool"]: c["score"] for c in scored}
        assert t["score"] >= 0.5 and t["score"] >= max(scores.values())
        assert t["tool"] is None or t["tool"] == max(scores, key=scores.get)
        assert all("hpsv2.1" in c["components"] and "mix" in c["components"] for c in scored)
    # brighter mean wins, as by hand: the input itself (which dn_keep returned) over dn_dim, credited to no tool
    assert [t["tool"] for t in good["trajectory"]] in ([None, "dh_boost"], ["dh_boost", None])
    bad = _run(tmp_path, monkeypatch, -0.3)  # every Q < 0.5: each ordering fails, the search compromises
    assert bad["rollbacks"] and bad["compromise"]
    assert all(t["failed"] for t in bad["trajectory"][:1]) and all(t["score"] < 0.5 for t in bad["trajectory"])


def test_pyiqa_niqe_is_created_from_the_pulled_file(caches: Path) -> None:
    pytest.importorskip("pyiqa")
    import scipy.io

    from fourkagent.data import __file__ as data_init

    pristine = np.load(Path(data_init).with_name("niqe_pristine.npz"))  # any valid pristine model (36-d mean, cov)
    (dest,) = [store.metric_path(m) for m in metric_files("niqe")]
    dest.parent.mkdir(parents=True)
    scipy.io.savemat(dest, {"mu_prisparam": pristine["mu"][None], "cov_prisparam": pristine["cov"]})
    assert not paper.missing_files("niqe")
    niqe = paper.create_metric("niqe")  # the real pyiqa factory; would download if it looked anywhere else
    clean = photo()[:192, :192]
    noisy = degrade.add_noise(clean, 25, seed=0)
    a, b = niqe(clean), niqe(noisy)
    assert np.isfinite([a, b]).all() and b > a  # noise is less natural


def test_hps_runs_the_checkpoint_on_open_clip(caches: Path, tmp_path: Path) -> None:
    open_clip = pytest.importorskip("open_clip")
    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 224, "layers": 1, "width": 32, "head_width": 16, "patch_size": 32},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / "TinyHPS.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path / "TinyHPS.json")
    torch.manual_seed(0)
    model = open_clip.create_model("TinyHPS", pretrained=None, output_dict=True).eval()
    ckpt = tmp_path / "hps.pt"
    torch.save({"state_dict": model.state_dict()}, ckpt)
    hps = paper.create_hps("TinyHPS", ckpt)
    img = photo()[:300, :170]  # not square: padded to 224² like HPSv2's evaluation transform
    x = paper.hps_preprocess(img)
    assert x.shape == (1, 3, 224, 224)
    pad_value = -torch.tensor(paper.OPENAI_MEAN) / torch.tensor(paper.OPENAI_STD)
    left = (224 - round(170 * 224 / 300)) // 2
    assert torch.allclose(x[0, :, :, :left], pad_value[:, None, None].expand(3, 224, left))
    with torch.no_grad():
        fi = torch.nn.functional.normalize(model.encode_image(x), dim=-1)
        ft = torch.nn.functional.normalize(model.encode_text(open_clip.get_tokenizer("TinyHPS")(["a photo"])), dim=-1)
    assert hps(img, "a photo") == pytest.approx(float(fi @ ft.T), abs=1e-5)
    assert hps(img, "a photo") != pytest.approx(hps(img, "a drawing of a car"), abs=1e-6)
    torch.save({"state_dict": {"visual.proj": torch.zeros(3)}}, ckpt)
    with pytest.raises(WeightsError, match="cannot load HPSv2.1"):
        paper.create_hps("TinyHPS", ckpt)
