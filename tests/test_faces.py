"""Face pipeline on real photos: detection + landmarks, alignment, paste-back, identity score, node, report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from conftest import photo, write

from fourkagent import degrade
from fourkagent.faces import reference_faces, restore_faces
from fourkagent.faces.align import TEMPLATE, align_face, face_mask, paste_back, transform_angle
from fourkagent.faces.detect import Face, detect_faces, dlib_unavailable
from fourkagent.faces.experts import FaceExpert, face_experts, face_model_files
from fourkagent.faces.identity import angle_deg, embed_aligned
from fourkagent.faces.score import MAX_DRIFT_DEG, FaceScorer
from fourkagent.imaging import Image, as_image, resize, scale_by
from fourkagent.tools.base import ToolRegistry
from fourkagent.tools.classical import denoise, sr

pytestmark = pytest.mark.skipif(dlib_unavailable() is not None, reason=str(dlib_unavailable()))


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    """A fixed, fast registry (classical SR + denoisers) so results do not depend on other tools."""
    reg = ToolRegistry()
    reg.add(*sr.TOOLS, *denoise.TOOLS)
    return reg


@pytest.fixture(scope="module")
def hopper() -> Image:
    """matplotlib's sample portrait (600×512), cropped to 512×512 around the face."""
    cbook = pytest.importorskip("matplotlib.cbook")
    from PIL import Image as PILImage

    with PILImage.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
        return as_image(np.asarray(im.convert("RGB")))[40:552]


@pytest.fixture(scope="module")
def astronaut() -> Image:
    return photo("astronaut")


def _face_angle_to_gt(img: Image, gt: Image, face: Face) -> float:
    """Identity distance of ``img``'s face to the ground truth's, both aligned with the GT landmarks."""
    pts = face.points()
    return angle_deg(embed_aligned(align_face(img, pts).crop), embed_aligned(align_face(gt, pts).crop))


def test_detects_face_with_five_landmarks(astronaut: Image) -> None:
    faces = detect_faces(astronaut)
    assert len(faces) == 1  # the mission patch (dlib margin ≈ 0.1) is rejected
    f = faces[0]
    x, y, w, h = f.box
    assert 150 < x + w / 2 < 250 and 80 < y + h / 2 < 160 and 70 < w < 120
    pts = f.points()
    assert ((pts >= (x, y)) & (pts <= (x + w, y + h))).all()
    assert pts[0, 0] > pts[1, 0] > pts[3, 0] > pts[2, 0]  # right eye outer/inner, left eye inner/outer
    assert pts[4, 1] > pts[:4, 1].max()  # nose base below the eyes


def test_haar_fallback_without_dlib(astronaut: Image, monkeypatch: pytest.MonkeyPatch) -> None:
    import fourkagent.faces.detect as det

    monkeypatch.setattr(det, "dlib_unavailable", lambda: "dlib is not installed")
    faces = det.detect_faces(astronaut)
    assert [f.detector for f in faces] == ["opencv-haar"]
    dlib_face = detect_faces(astronaut)[0]
    assert np.abs(faces[0].points() - dlib_face.points()).mean() < 0.2 * dlib_face.size


@pytest.mark.parametrize("angle", [-25.0, 20.0])
def test_rotated_face_is_aligned_upright(hopper: Image, angle: float) -> None:
    ref = detect_faces(hopper)[0]
    rot = cv2.warpAffine(hopper, cv2.getRotationMatrix2D(ref.center, angle, 1.0), hopper.shape[1::-1],
                         borderMode=cv2.BORDER_REFLECT101)
    faces = detect_faces(rot)
    assert len(faces) == 1
    al = align_face(rot, faces[0].points())
    on_crop = np.c_[faces[0].points(), np.ones(5)] @ al.matrix.T
    assert np.abs(on_crop - TEMPLATE).mean() < 3.0
    upright = transform_angle(align_face(hopper, ref.points()).matrix)
    assert abs(transform_angle(al.matrix) - upright - angle) < 5.0
    assert angle_deg(embed_aligned(al.crop), embed_aligned(align_face(hopper, ref.points()).crop)) < 8.0


def test_paste_back_changes_only_the_mask(hopper: Image) -> None:
    f = detect_faces(hopper)[0]
    al = align_face(hopper, f.points())
    res = paste_back(hopper, 1.0 - al.crop, al.matrix)  # a drastic "restoration" shows every leak
    mask = res.full_mask()
    assert np.array_equal(res.image[mask == 0], hopper[mask == 0])
    assert np.abs(res.image - hopper)[mask > 0.9].mean() > 0.2
    # feathered, not a hard edge: where the mask is low the change is proportionally low
    low = (mask > 0) & (mask < 0.05)
    assert low.any() and np.abs(res.image - hopper)[low].max() <= 0.05 + 1e-6
    assert face_mask()[0].max() == 0 and face_mask()[:, -1].max() == 0  # zero at the crop edge: no seam


def test_face_at_the_border(hopper: Image) -> None:
    f = detect_faces(hopper)[0]
    x, y, w, h = f.box
    cut = np.ascontiguousarray(hopper[:, x + w // 4:])  # a quarter of the face is outside the image
    faces = detect_faces(cut)
    assert len(faces) == 1
    al = align_face(cut, faces[0].points())
    res = paste_back(cut, np.clip(al.crop * 1.2, 0, 1), al.matrix)
    mask = res.full_mask()
    assert res.image.shape == cut.shape and mask[:, 0].max() > 0.5  # reaches the edge
    assert np.array_equal(res.image[mask == 0], cut[mask == 0])


def test_score_rejects_an_identity_swap(hopper: Image, astronaut: Image) -> None:
    crop_h = align_face(hopper, detect_faces(hopper)[0].points()).crop
    crop_a = align_face(astronaut, detect_faces(astronaut)[0].points()).crop
    scorer = FaceScorer(crop_h, embed_aligned(crop_h), ["denoising"])
    same = scorer(crop_h, baseline=True)
    swap = scorer(crop_a, generative=True)
    assert same.rejected is None and same.components["identity_drift_deg"] < 1.0
    assert swap.rejected is not None and "identity drift" in swap.rejected
    assert swap.components["identity_drift_deg"] > MAX_DRIFT_DEG


def _oracle(gt: Image, face: Face) -> FaceExpert:
    """A stand-in for a good face model: returns the ground-truth crop (identity kept, detail restored)."""
    crop = align_face(gt, face.points()).crop
    return FaceExpert("oracle", "face-model", "face restoration", lambda c, side: crop, generative=True)


def _degrade(gt: Image, factor: int, sigma: float) -> Image:
    return degrade.add_noise(degrade.downscale(gt, factor), sigma, seed=1)


@pytest.mark.parametrize(("factor", "sigma"), [(4, 10.0), (2, 15.0)])
def test_identity_improves_or_face_is_kept(hopper: Image, registry: ToolRegistry, factor: int, sigma: float) -> None:
    lq = _degrade(hopper, factor, sigma)
    plain = scale_by(lq, factor, "cubic")
    refs = reference_faces(lq)
    out, rec = restore_faces(plain, refs, registry=registry)
    gt_face = detect_faces(hopper)[0]
    assert len(refs["faces"]) == len(rec["faces"]) == 1
    ref_c = np.array(Face.from_dict(refs["faces"][0]).center) * factor
    assert np.linalg.norm(np.array(Face.from_dict(rec["faces"][0]).center) - ref_c) < 0.25 * gt_face.size
    face = rec["faces"][0]
    names = [c["expert"] for c in face["candidates"]]
    assert names[0] == "unrestored" and any(n.startswith("denoise_nlm@native") for n in names)
    if face["action"] == "restored":
        assert _face_angle_to_gt(out, hopper, gt_face) < _face_angle_to_gt(plain, hopper, gt_face)
    else:
        assert face["action"] == "kept" and face["reason"] and out is plain


def test_good_face_model_is_chosen_and_restores_identity(hopper: Image, registry: ToolRegistry) -> None:
    lq = _degrade(hopper, 4, 10.0)
    plain = scale_by(lq, 4, "cubic")
    refs = reference_faces(lq)
    face = detect_faces(plain, detect_side=max(lq.shape[:2]))[0]
    experts = [*face_experts(registry), _oracle(hopper, face)]
    out, rec = restore_faces(plain, refs, experts=experts)
    f = rec["faces"][0]
    assert f["action"] == "restored" and f["chosen"] == "oracle"
    gt_face = detect_faces(hopper)[0]
    assert _face_angle_to_gt(out, hopper, gt_face) < _face_angle_to_gt(plain, hopper, gt_face) - 3.0
    x, y, w, h = gt_face.box
    region = (slice(y, y + h), slice(x, x + w))
    assert np.abs(out[region] - hopper[region]).mean() < np.abs(plain[region] - hopper[region]).mean()


def test_two_faces_side_by_side(hopper: Image, astronaut: Image, registry: ToolRegistry) -> None:
    gt = np.concatenate([astronaut, hopper], axis=1)  # 512×1024, two people
    lq = _degrade(gt, 2, 8.0)
    plain = scale_by(lq, 2, "cubic")
    refs = reference_faces(lq)
    assert len(refs["faces"]) == 2
    face_b = detect_faces(plain, detect_side=max(lq.shape[:2]))[1]
    experts = [*face_experts(registry), _oracle(gt, face_b)]  # only the right face has a good expert
    out, rec = restore_faces(plain, refs, experts=experts)
    assert rec["status"] == "done" and len(rec["faces"]) == 2
    left, right = rec["faces"]
    assert left["box"][0] < 512 <= right["box"][0]
    assert [r["reference"]["box"][0] < 256 for r in (left, right)] == [True, False]
    assert right["action"] == "restored" and right["chosen"] == "oracle"
    assert left["action"] == "kept"  # the oracle's crop is the wrong person there: refused
    oracle_left = next(c for c in left["candidates"] if c["expert"] == "oracle")
    assert "identity drift" in oracle_left["rejected"]
    x0, y0, x1, y1 = right["paste_region"]
    outside = np.ones(out.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], plain[outside])


def test_count_mismatch_and_tiny_faces_are_skipped(hopper: Image, astronaut: Image) -> None:
    two = np.concatenate([astronaut, hopper], axis=1)
    one = np.concatenate([astronaut, np.full_like(hopper, 0.5)], axis=1)
    out, rec = restore_faces(one, reference_faces(two), experts=[])
    assert rec["status"] == "skipped" and "face count mismatch: 2 in the input, 1 in the result" in rec["reason"]
    assert out is one
    out, rec = restore_faces(hopper, None, experts=[], min_face=400)
    assert rec["status"] == "skipped" and rec["faces"][0]["action"] == "skipped"
    assert "too small" in rec["faces"][0]["reason"] and "too small" in rec["reason"]


def test_face_model_hook_registers_only_existing_files(tmp_path: Path, hopper: Image) -> None:
    assert not any(e.kind == "face-model" for e in face_experts(ToolRegistry(), model_dir=tmp_path))
    (tmp_path / "GFPGANv1.4.pth").write_bytes(b"not a checkpoint")
    (tmp_path / "RealESRGAN_x4plus.pth").write_bytes(b"x")
    (tmp_path / "faces").mkdir()
    (tmp_path / "faces" / "my_face_model.safetensors").write_bytes(b"x")
    assert [p.name for p in face_model_files(tmp_path)] == ["GFPGANv1.4.pth", "my_face_model.safetensors"]
    experts = face_experts(ToolRegistry(), model_dir=tmp_path)
    assert [e.name for e in experts] == ["unrestored", "face:GFPGANv1.4", "face:my_face_model"]
    out, rec = restore_faces(hopper, None, experts=experts[:2])  # a broken file is a failed candidate
    bad = rec["faces"][0]["candidates"][1]
    assert bad["rejected"] == "failed" and bad["error"] and out is hopper


def test_node_uses_the_model_dir_of_the_context(
    tmp_path: Path, hopper: Image, registry: ToolRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langgraph.runtime import Runtime

    import fourkagent.faces.experts as ex
    import fourkagent.tools.registry as main_registry
    from fourkagent.context import Context
    from fourkagent.nodes.face_restore import face_restore

    monkeypatch.setattr(main_registry, "MAIN_REGISTRY", registry)  # the fast tools only
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "codeformer.pth").write_bytes(b"x")
    monkeypatch.setattr(ex, "_run_face_model", lambda path, crop, side: crop[::-1].copy())  # no torch needed
    state = _face_state(tmp_path, hopper, None)  # no references in the state: taken from the input artifact
    update = face_restore(state, Runtime(context=Context(model_dir=str(tmp_path / "models"))))
    face = update["faces"]["faces"][0]
    flipped = next(c for c in face["candidates"] if c["expert"] == "face:codeformer")
    assert "identity drift" in flipped["rejected"]  # an upside-down face is not the same person
    assert update["faces"]["input_faces"] == 1


def _face_state(tmp_path: Path, img: Image, refs: dict[str, Any] | None) -> dict[str, Any]:
    from fourkagent.profiles import load_profile
    from fourkagent.state.artifacts import ArtifactStore

    store = ArtifactStore(tmp_path / "run" / "artifacts")
    aid = store.put(img)
    root = {"id": "n0", "parent": None, "step": None, "tool": None, "artifact": aid, "score": None,
            "width": img.shape[1], "height": img.shape[0], "children": {}, "failed": False, "best": None}
    state = {"run_dir": str(tmp_path / "run"), "tree": {"n0": root}, "cursor": "n0",
             "profile_data": load_profile("ExpSRFR-s4-P").model_dump(), "input_info": {"artifact": aid}}
    if refs is not None:
        state["face_refs"] = refs
    return state


def test_node_skips_cleanly_without_faces(tmp_path: Path) -> None:
    from fourkagent.nodes.face_restore import face_restore

    img = photo("coffee")[:256, :256]
    update = face_restore(_face_state(tmp_path, img, None))
    assert update["faces"]["status"] == "skipped" and update["faces"]["reason"] == "no face found"
    assert "tree" not in update and "cursor" not in update


@pytest.mark.slow
def test_end_to_end_profile_records_faces(tmp_path: Path, hopper: Image) -> None:
    from fourkagent.runner import run

    src = write(tmp_path, "face_lq.png", _degrade(resize(hopper, (384, 384), "area"), 4, 5.0))
    res = run(str(src), str(tmp_path / "face_x4.png"), "ExpSRFR-s4-P")
    report = json.loads(Path(res["report_path"]).read_text())
    faces = report["faces"]
    assert set(faces) >= {"status", "reason", "faces"}
    assert faces["status"] == "done" and len(faces["faces"]) == 1
    f = faces["faces"][0]
    assert len(f["landmarks"]) == 5 and len(f["box"]) == 4 and f["candidates"]
    assert f["action"] in ("restored", "kept") and f["chosen"]
    assert all({"expert", "score", "rejected"} <= set(c) for c in f["candidates"])
    assert "faces: done" in res["summary"]
    assert report["output"]["size"] == [384, 384]


def test_faces_the_input_was_too_noisy_to_show_are_found_on_the_restored_image(hopper: Image) -> None:
    blank = np.full_like(hopper, 0.5)  # stands for an input where the detector found nothing
    refs = reference_faces(blank)
    assert refs["faces"] == []
    out, rec = restore_faces(hopper, refs, experts=[])
    assert rec["status"] != "skipped" or "mismatch" not in rec["reason"]
    assert len(rec["faces"]) == 1 and "found on the restored image" in rec["note"]
    assert rec["faces"][0]["action"] in ("kept", "restored")
