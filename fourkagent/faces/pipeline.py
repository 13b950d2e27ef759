"""The face stage: detect, align, restore with every face expert, score, paste the best back.

``reference_faces`` runs on the low-quality input (identity references, small and JSON-serialisable);
``restore_faces`` runs on the result, matches its faces to the references by position and restores each.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from fourkagent.errors import FourKError
from fourkagent.faces.align import align_face, face_mask, match_color, paste_back, transform_angle, transform_scale
from fourkagent.faces.detect import Face, detect_faces, detector_name
from fourkagent.faces.experts import FaceExpert, NoChange, face_experts, native_side
from fourkagent.faces.identity import EMBEDDER, embed_aligned, embedder_unavailable
from fourkagent.faces.score import MAX_DRIFT_DEG, FaceScorer
from fourkagent.imaging import Image
from fourkagent.tools.base import ToolRegistry

MIN_FACE = 48
"""Faces whose box is smaller than this (pixels, in the image being restored) are skipped."""
MAX_FACES = 16
"""At most this many faces (the largest) are restored per image; the rest are skipped with the reason."""
MATCH_TOLERANCE = 0.5
"""A result face matches a reference when their centres are within this many face sizes."""


def reference_faces(img: Image) -> dict[str, Any]:
    """Faces of the (low-quality) input with their identity embeddings, for the state (never raises)."""
    h, w = img.shape[:2]
    note = embedder_unavailable()
    out: dict[str, Any] = {"size": [w, h], "detector": detector_name(), "embedder": None if note else EMBEDDER}
    try:
        refs = []
        for f in detect_faces(img):
            d = f.to_dict()
            if note is None:
                d["embedding"] = [round(float(v), 5) for v in embed_aligned(align_face(img, f.points()).crop)]
            refs.append(d)
    except Exception as exc:  # references are optional: the face stage then skips with this reason
        return out | {"faces": [], "error": f"{type(exc).__name__}: {exc}"}
    return out | {"faces": refs}


def _skip(reason: str, faces: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"status": "skipped", "reason": reason, "faces": faces or [], **extra}


def match_references(faces: list[Face], reference: dict[str, Any], size: tuple[int, int]) -> list[int] | str:
    """Index of the reference face for each detected face, or the reason they do not correspond."""
    refs = [Face.from_dict(r) for r in reference.get("faces", [])]
    if len(refs) != len(faces):
        return f"face count mismatch: {len(refs)} in the input, {len(faces)} in the result"
    rw, rh = reference.get("size", size)
    sx, sy = size[0] / rw, size[1] / rh
    cost = np.zeros((len(faces), len(refs)))
    for i, f in enumerate(faces):
        for j, r in enumerate(refs):
            rc = np.array([r.center[0] * sx, r.center[1] * sy])
            cost[i, j] = np.linalg.norm(np.array(f.center) - rc) / max(f.size, r.size * sx, 1.0)
    rows, cols = linear_sum_assignment(cost)
    worst = cost[rows, cols].max(initial=0.0)
    if worst > MATCH_TOLERANCE:
        return f"faces moved between input and result ({worst:.2f} face sizes apart)"
    order = [0] * len(faces)
    for i, j in zip(rows, cols):
        order[int(i)] = int(j)
    return order


def _same(a: Image | None, b: Image) -> bool:
    return a is not None and np.array_equal(a, b)


def _run_candidates(crop: Image, experts: list[FaceExpert], side: int) -> list[dict[str, Any]]:
    """Each expert's output (colour-matched to the crop inside the face mask), or its error."""
    mask = face_mask(crop.shape[0])
    out: list[dict[str, Any]] = []
    for ex in experts:
        t0 = time.perf_counter()
        try:
            res = ex(crop, side)
            if ex.kind != "unrestored":
                res = match_color(res, crop, mask)
            same = next((o["expert"].name for o in out if _same(o["crop"], res)), None)
            if same is not None:
                raise NoChange(f"same result as {same}")
            out.append({"expert": ex, "crop": res, "error": None})
        except NoChange as exc:
            out.append({"expert": ex, "crop": None, "error": None, "skipped": str(exc)})
        except FourKError as exc:
            out.append({"expert": ex, "crop": None, "error": str(exc)})
        except Exception as exc:  # a broken expert must not end the face stage
            out.append({"expert": ex, "crop": None, "error": f"{ex.name} failed: {type(exc).__name__}: {exc}"})
        out[-1]["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def restore_face(
    img: Image,
    face: Face,
    experts: list[FaceExpert],
    reference: list[float] | None,
    priority: str,
    max_drift: float,
    upscale: float = 1.0,
) -> tuple[Image, dict[str, Any]]:
    """Restore one face: align, run experts, score, paste the best back (unless ``unrestored`` wins).

    ``upscale`` is the image's size over the input's: with the alignment scale it gives the face's native
    (input) resolution, where the experts restore it.
    """
    t0 = time.perf_counter()
    al = align_face(img, face.points())
    size = al.crop.shape[0]
    side = native_side(transform_scale(al.matrix), upscale, size)
    cats = sorted({e.category for e in experts})
    ref = None if reference is None else np.asarray(reference)
    scorer = FaceScorer(al.crop, ref, cats, priority, max_drift, native_side=side)
    cands, best = [], None
    for c in _run_candidates(al.crop, experts, side):
        rec: dict[str, Any] = {"expert": c["expert"].name, "kind": c["expert"].kind, "seconds": c["seconds"]}
        if c.get("skipped"):
            rec |= {"score": None, "rejected": f"not scored: {c['skipped']}"}
        elif c["error"] is not None:
            rec |= {"error": c["error"], "score": None, "rejected": "failed"}
        else:
            s = scorer(c["crop"], generative=c["expert"].generative, baseline=c["expert"].kind == "unrestored")
            rec |= {"score": s.score, "components": s.components, "rejected": s.rejected}
            if s.rejected is None and (best is None or s.score > best[0]):
                best = (s.score, c, s)
        cands.append(rec)
    record: dict[str, Any] = {
        "tilt_deg": round(transform_angle(al.matrix), 1),
        "native_side": side,
        "identity_limit_deg": round(scorer.limit, 2) if scorer.reference is not None else None,
        "candidates": cands,
    }
    if scorer.identity_note:
        record["identity_note"] = f"identity not measured: {scorer.identity_note}"
    if best is None:
        record |= {"action": "kept", "reason": "every candidate was rejected or failed", "chosen": None}
        out = img
    else:
        score, c, s = best
        record |= {"chosen": c["expert"].name, "score": score, "identity_drift_deg": s.components["identity_drift_deg"]}
        if c["expert"].kind == "unrestored":
            others = [r for r in cands if r["kind"] != "unrestored" and r["score"] is not None]
            why = "the unrestored face scored best"
            if others and all(r["rejected"] for r in others):
                why = f"no restored candidate passed the identity checks ({len(others)} scored)"
            record |= {"action": "kept", "reason": why}
            out = img
        else:
            pasted = paste_back(img, c["crop"], al.matrix)
            record |= {"action": "restored", "paste_region": list(pasted.region)}
            out = pasted.image
    record["seconds"] = round(time.perf_counter() - t0, 3)
    return out, record


def restore_faces(
    image: Image,
    reference_faces: dict[str, Any] | None = None,
    *,
    experts: list[FaceExpert] | None = None,
    registry: ToolRegistry | None = None,
    priority: str = "perception",
    model_dir: str | Path | None = None,
    min_face: int = MIN_FACE,
    max_drift: float = MAX_DRIFT_DEG,
) -> tuple[Image, dict[str, Any]]:
    """Restore every face of ``image``; returns the new image and the stage record.

    Args:
        image: the image after restoration/SR.
        reference_faces: :func:`reference_faces` of the low-quality input (identity references and the
            face count/positions the result must match); ``None`` uses each face's own unrestored crop.
        experts: face experts (default: :func:`face_experts` from ``registry``, ``priority``, ``model_dir``).
        min_face: faces smaller than this (box side, px) are skipped with a reason.
        max_drift: identity drift (degrees) above which a candidate is rejected.

    Returns:
        ``(image, {"status", "reason", "faces": [...], ...})``; the image is the input object when no face
        was pasted.
    """
    t0 = time.perf_counter()
    h, w = image.shape[:2]
    ref_size = reference_faces.get("size") if reference_faces else None
    detect_side = max(ref_size) if ref_size else None
    upscale = max(w, h) / max(ref_size) if ref_size else 1.0
    faces = detect_faces(image, detect_side=detect_side)
    meta = {"detector": detector_name(), "embedder": None if embedder_unavailable() else EMBEDDER}
    if not faces:
        return image, _skip("no face found", **meta)
    records = [f.to_dict() for f in faces]
    order: list[int | None] = [None] * len(faces)
    refs = reference_faces.get("faces", []) if reference_faces else []
    if reference_faces is not None and reference_faces.get("error"):
        return image, _skip(f"no identity references: {reference_faces['error']}", records, **meta)
    if reference_faces is not None and not refs:
        # none found in the input (too noisy or too small for the detector), found after restoration: restore
        # them, each guarded by its own unrestored crop, as without references
        meta["note"] = "no face was found in the input (too noisy or small); these were found on the restored image"
    elif reference_faces is not None:
        matched = match_references(faces, reference_faces, (w, h))
        if isinstance(matched, str):
            return image, _skip(matched, records, **meta)
        order = list(matched)
    if experts is None:
        experts = face_experts(registry, priority=priority, model_dir=model_dir)
    largest = set(sorted(range(len(faces)), key=lambda i: -faces[i].size)[:MAX_FACES])
    out = image
    for i, (f, rec) in enumerate(zip(faces, records)):
        if order[i] is not None:
            rec["reference"] = {k: refs[order[i]][k] for k in ("box", "landmarks")}
        if f.size < min_face:
            rec |= {"action": "skipped", "reason": f"face too small ({f.size} px < {min_face} px)"}
            continue
        if i not in largest:
            rec |= {"action": "skipped", "reason": f"more than {MAX_FACES} faces: only the largest are restored"}
            continue
        ref_emb = refs[order[i]].get("embedding") if order[i] is not None else None
        out, face_rec = restore_face(out, f, experts, ref_emb, priority, max_drift, upscale)
        rec |= face_rec
    counts = {a: sum(r.get("action") == a for r in records) for a in ("restored", "kept", "skipped")}
    parts = ", ".join(f"{n} {a}" for a, n in counts.items() if n)
    n = len(records)
    status = "done" if counts["restored"] + counts["kept"] else "skipped"
    reason = f"{n} face{'s' if n > 1 else ''}: {parts}"
    if status == "skipped":
        reason += f" ({records[0]['reason']})"
    seconds = round(time.perf_counter() - t0, 3)
    return out, {"status": status, "reason": reason, "faces": records, **meta, "seconds": seconds}
