"""Fit the NIQE pristine model on clean real photos that ship with scikit-image and scikit-learn.

Usage: python training/fit_niqe.py [OUT.npz]   (default: fourkagent/data/niqe_pristine.npz)
Deterministic: fixed image list and scales; patches kept by the sharpness rule of the NIQE paper.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from fourkagent.imaging import as_image, scale_by
from fourkagent.scoring.niqe import patch_features

SKIMAGE = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
           "retina", "camera", "moon", "brick", "grass", "gravel"]


def clean_photos() -> list[np.ndarray]:
    """The training photos (held-out evaluation should use other images)."""
    from skimage import data

    photos = [as_image(getattr(data, n)()) for n in SKIMAGE]
    try:
        from sklearn.datasets import load_sample_images

        photos += [as_image(im) for im in load_sample_images().images]
    except ImportError:
        pass
    return photos


def fit(photos: list[np.ndarray], sharp_fraction: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of features of the sharpest patches at scales 1, 0.75 and 0.5."""
    rows = []
    for img in photos:
        for s in (1.0, 0.75, 0.5):
            im = img if s == 1.0 else scale_by(img, s, "area")
            if min(im.shape[:2]) < 192:
                continue
            feats, sharp = patch_features(im, max_patches=None)
            keep = sharp > sharp_fraction * sharp.max()
            rows.append(feats[keep & np.isfinite(feats).all(1)])
    allf = np.concatenate(rows)
    return allf.mean(0), np.cov(allf, rowvar=False)


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[1] / "fourkagent/data/niqe_pristine.npz"
    mu, cov = fit(clean_photos())
    np.savez(out, mu=mu.astype(np.float32), cov=cov.astype(np.float32))
    print(f"wrote {out} from {len(clean_photos())} photos")
