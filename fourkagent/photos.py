"""Free real photos for tests, benchmarks and training (no download).

scikit-image's bundled photos, plus scikit-learn's two sample photos and matplotlib's Grace Hopper portrait
when those packages are installed. Loaders are lazy: a photo is decoded only when asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from fourkagent.imaging import Image, as_image

SKIMAGE_PHOTOS: tuple[str, ...] = (
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
    "retina", "camera", "moon", "brick", "grass", "gravel", "cell",
)
"""The default scikit-image photos, in the order the shipped Q-MoE model was fitted on."""

Loader = Callable[[], np.ndarray]


def _sklearn(name: str) -> Loader:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image

        return load_sample_image(name)

    return load


def _matplotlib(name: str) -> Loader:
    def load() -> np.ndarray:
        import matplotlib.cbook as cbook
        from PIL import Image as PILImage

        with cbook.get_sample_data(name) as fh, PILImage.open(fh) as im:
            return np.asarray(im.convert("RGB"))

    return load


def photo_sources(skimage_names: Sequence[str] = SKIMAGE_PHOTOS) -> dict[str, Loader]:
    """Every available photo loader by name: the given scikit-image photos, then ``china`` and ``flower``
    (scikit-learn) and ``grace_hopper`` (matplotlib) when installed.

    Raises:
        ImportError: scikit-image is not installed.
    """
    import skimage.data as skdata

    out: dict[str, Loader] = {n: getattr(skdata, n) for n in skimage_names if hasattr(skdata, n)}
    try:
        import sklearn.datasets  # noqa: F401

        out |= {"china": _sklearn("china.jpg"), "flower": _sklearn("flower.jpg")}
    except ImportError:
        pass
    try:
        import matplotlib.cbook  # noqa: F401

        out["grace_hopper"] = _matplotlib("grace_hopper.jpg")
    except ImportError:
        pass
    return out


def decode(loader: Loader) -> Image:
    """Run a loader and convert to the internal type (some scikit-image loaders return a tuple)."""
    a = loader()
    return as_image(a[0] if isinstance(a, tuple) else a)


def sample_photos(limit: int | None = None, max_side: int = 512) -> dict[str, Image]:
    """The default photos, each centre-cropped to at most ``max_side`` per side, trimmed to a multiple of 8
    (clean ×2/×4 protocols). Only the first ``limit`` photos are decoded."""
    out: dict[str, Image] = {}
    for name, loader in list(photo_sources().items())[:limit]:
        try:
            img = decode(loader)
        except Exception:  # a data file missing from this installation
            continue
        h, w = img.shape[:2]
        ch, cw = min(h, max_side) // 8 * 8, min(w, max_side) // 8 * 8
        y, x = (h - ch) // 2, (w - cw) // 2
        out[name] = np.ascontiguousarray(img[y : y + ch, x : x + cw])
    return out
