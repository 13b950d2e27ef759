"""The paper's external toolbox weights and learned-metric weights, as data (for users with internet).

Nothing here downloads. :mod:`fourkagent.models.store` pulls an entry's ``url`` into the user model
directory (or, for metrics, where pyiqa / hpsv2 look) and :mod:`fourkagent.models.external` turns
installed entries into tools. ``sha256`` is set only where the upstream publishes a digest; ``None``
means "unknown" (the store then records the digest of the file it installed and checks that one at
every load). ``direct=False`` marks weights hosted where a plain HTTP GET cannot fetch them (Google
Drive folders, Baidu): download those in a browser and run ``4kagent models add FILE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fourkagent.tools.base import Preference
from fourkagent.vocabulary import Category

Loader = Literal["spandrel", "spandrel-extra", "diffusers"]
"""How the weights run: spandrel 0.4.2 core, the separate ``spandrel-extra-arches`` package, or diffusers."""
Cache = Literal["pyiqa", "clip", "hf"]
"""Where a metric file goes: pyiqa's weight cache, CLIP's cache, or the Hugging Face hub cache."""

_SWINIR = "https://github.com/JingyunLiang/SwinIR/releases/download/v0.0/"
_KAIR = "https://github.com/cszn/KAIR/releases/download/v1.0/"
_HF_PYIQA = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/"
_GDRIVE = "https://drive.google.com/uc?id="
_EXTRA = "not in spandrel 0.4.2 core: its architecture is in the spandrel-extra-arches package (pip install spandrel-extra-arches)"


@dataclass(frozen=True)
class ModelEntry:
    """One restoration/SR weights file of the paper's toolbox."""

    name: str
    """Catalogue id, e.g. ``swinir-classical-x4`` (what ``models pull`` takes)."""
    category: Category
    scale: int
    arch: str
    """Architecture id as spandrel names it (``ESRGAN`` for RRDBNet)."""
    licence: str
    url: str
    """Official download location (a release asset, or the upstream's Drive link when ``direct`` is False)."""
    file: str
    """File name in the model directory."""
    sha256: str | None = None
    size: int | None = None
    """Exact size in bytes when published (used to verify), else None."""
    approx_mb: float | None = None
    """Rough size for display only."""
    preference: Preference = "both"
    loader: Loader = "spandrel"
    direct: bool = True
    slow: bool = False
    note: str = ""

    @property
    def tool_name(self) -> str:
        """The registered tool's name."""
        return "ext_" + self.name.replace("-", "_").replace(".", "_")


@dataclass(frozen=True)
class MetricFile:
    """One weights file a learned metric of the paper's scorer needs."""

    metric: str
    """Metric name as fourkagent/pyiqa use it (``hpsv2.1``, ``clipiqa+``, ``maniqa``, ``musiq``, ``topiq_nr``)."""
    file: str
    url: str
    cache: Cache
    licence: str
    sha256: str | None = None
    hf_repo: str | None = None
    """For ``cache == "hf"``: the hub repo whose cache folder the file lands in."""
    approx_mb: float | None = None


def _swinir(name: str, cat: Category, scale: int, file: str, pref: Preference, note: str = "") -> ModelEntry:
    return ModelEntry(name, cat, scale, "SwinIR", "Apache-2.0", _SWINIR + file, file, approx_mb=68,
                      preference=pref, slow=True, note=note)


MODELS: tuple[ModelEntry, ...] = (
    _swinir("swinir-classical-x2", "super-resolution", 2, "001_classicalSR_DF2K_s64w8_SwinIR-M_x2.pth", "fidelity"),
    _swinir("swinir-classical-x4", "super-resolution", 4, "001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth", "fidelity"),
    _swinir("swinir-real-x4-gan", "super-resolution", 4, "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN.pth", "perception"),
    _swinir("swinir-real-x4-psnr", "super-resolution", 4, "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_PSNR.pth", "fidelity"),
    _swinir("swinir-color-dn15", "denoising", 1, "005_colorDN_DFWB_s128w8_SwinIR-M_noise15.pth", "both"),
    _swinir("swinir-color-dn50", "denoising", 1, "005_colorDN_DFWB_s128w8_SwinIR-M_noise50.pth", "both"),
    _swinir("swinir-car-jpeg10", "jpeg compression artifact removal", 1, "006_CAR_DFWB_s126w7_SwinIR-M_jpeg10.pth",
            "both", "greyscale model (the paper's JPEG CAR expert): spandrel loads it with 1 input channel"),
    ModelEntry("hat-srx4-imagenet", "super-resolution", 4, "HAT", "Apache-2.0",
               "https://drive.google.com/drive/folders/1HpmReFfoUqUbnAOQ7rvOeNU3uf_m69w0",
               "HAT_SRx4_ImageNet-pretrain.pth", approx_mb=80, preference="fidelity", direct=False, slow=True,
               note="official weights on Google Drive / Baidu only"),
    ModelEntry("hat-real-gan-sharper", "super-resolution", 4, "HAT", "Apache-2.0",
               "https://drive.google.com/drive/folders/1HpmReFfoUqUbnAOQ7rvOeNU3uf_m69w0",
               "Real_HAT_GAN_sharper.pth", approx_mb=80, preference="perception", direct=False, slow=True,
               note="official weights on Google Drive / Baidu only"),
    ModelEntry("realesrgan-x4plus", "super-resolution", 4, "ESRGAN", "BSD-3-Clause",
               "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth",
               "RealESRGAN_x4plus.pth", approx_mb=64, preference="perception", slow=True),
    ModelEntry("restormer-motion-deblur", "motion deblurring", 1, "Restormer", "Academic Public License (non-commercial)",
               "https://github.com/swz30/Restormer/releases/download/v1.0/motion_deblurring.pth",
               "motion_deblurring.pth", approx_mb=100, loader="spandrel-extra", slow=True, note=_EXTRA),
    ModelEntry("restormer-defocus-deblur", "defocus deblurring", 1, "Restormer", "Academic Public License (non-commercial)",
               "https://github.com/swz30/Restormer/releases/download/v1.0/single_image_defocus_deblurring.pth",
               "single_image_defocus_deblurring.pth", approx_mb=100, loader="spandrel-extra", slow=True, note=_EXTRA),
    ModelEntry("restormer-derain", "deraining", 1, "Restormer", "Academic Public License (non-commercial)",
               "https://github.com/swz30/Restormer/releases/download/v1.0/deraining.pth",
               "deraining.pth", approx_mb=100, loader="spandrel-extra", slow=True, note=_EXTRA),
    ModelEntry("mprnet-deblur", "motion deblurring", 1, "MPRNet", "Academic Public License (non-commercial)",
               "https://github.com/swz30/MPRNet/tree/main/Deblurring", "model_deblurring.pth",
               approx_mb=80, loader="spandrel-extra", direct=False, slow=True,
               note="official weights on Google Drive, linked from that README; " + _EXTRA),
    ModelEntry("mprnet-derain", "deraining", 1, "MPRNet", "Academic Public License (non-commercial)",
               "https://github.com/swz30/MPRNet/tree/main/Deraining", "model_deraining.pth",
               approx_mb=15, loader="spandrel-extra", direct=False, slow=True,
               note="official weights on Google Drive, linked from that README; " + _EXTRA),
    ModelEntry("nafnet-sidd-width64", "denoising", 1, "NAFNet", "MIT", _GDRIVE + "14Fht1QQJ2gMlk4N1ERCRuElg8JfjrWWR",
               "NAFNet-SIDD-width64.pth", direct=False, slow=True, note="official weights on Google Drive"),
    ModelEntry("nafnet-gopro-width64", "motion deblurring", 1, "NAFNet", "MIT", _GDRIVE + "1S0PVRbyTakYY9a82kujgZLbMihfNBLfC",
               "NAFNet-GoPro-width64.pth", direct=False, slow=True, note="official weights on Google Drive"),
    ModelEntry("scunet-color-real-psnr", "denoising", 1, "SCUNet", "Apache-2.0", _KAIR + "scunet_color_real_psnr.pth",
               "scunet_color_real_psnr.pth", approx_mb=70, preference="fidelity", slow=True),
    ModelEntry("scunet-color-real-gan", "denoising", 1, "SCUNet", "Apache-2.0", _KAIR + "scunet_color_real_gan.pth",
               "scunet_color_real_gan.pth", approx_mb=70, preference="perception", slow=True),
    ModelEntry("fbcnn-color", "jpeg compression artifact removal", 1, "FBCNN", "Apache-2.0",
               "https://github.com/jiaxi-jiang/FBCNN/releases/download/v1.0/fbcnn_color.pth", "fbcnn_color.pth",
               approx_mb=290, slow=True),
    ModelEntry("gfpgan-v1.3", "face restoration", 1, "GFPGAN", "Apache-2.0 (StyleGAN2 parts: NVIDIA licences)",
               "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.3.pth", "GFPGANv1.3.pth",
               approx_mb=332, preference="perception", slow=True, note="aligned 512² face crops: used by the face stage"),
    ModelEntry("gfpgan-v1.4", "face restoration", 1, "GFPGAN", "Apache-2.0 (StyleGAN2 parts: NVIDIA licences)",
               "https://github.com/TencentARC/GFPGAN/releases/download/v1.3.4/GFPGANv1.4.pth", "GFPGANv1.4.pth",
               approx_mb=332, preference="perception", slow=True, note="aligned 512² face crops: used by the face stage"),
    ModelEntry("codeformer", "face restoration", 1, "CodeFormer", "S-Lab License 1.0 (non-commercial)",
               "https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/codeformer.pth", "codeformer.pth",
               approx_mb=360, preference="perception", loader="spandrel-extra", slow=True,
               note="aligned 512² face crops; " + _EXTRA),
    ModelEntry("diffbir-v2", "super-resolution", 4, "DiffBIR", "Apache-2.0",
               "https://huggingface.co/lxq007/DiffBIR-v2/resolve/main/v2.pth", "DiffBIR_v2.pth",
               preference="perception", loader="diffusers", slow=True,
               note="IRControlNet for Stable Diffusion 2.1-base: pull bsrnet-x4 (its stage 1) too, then run "
                    "`4kagent models convert diffbir-v2 --base SD21_BASE_DIR`"),
    ModelEntry("bsrnet-x4", "super-resolution", 4, "ESRGAN", "Apache-2.0 (BSRGAN)", _KAIR + "BSRNet.pth", "BSRNet.pth",
               approx_mb=64, preference="fidelity", slow=True,
               note="BSRGAN's PSNR-oriented RRDBNet (23 blocks); DiffBIR v2's stage-1 model for SR"),
    ModelEntry("osediff", "super-resolution", 4, "OSEDiff", "Apache-2.0",
               "https://raw.githubusercontent.com/cswry/OSEDiff/main/preset/models/osediff.pkl", "osediff.pkl",
               preference="perception", loader="diffusers",
               note="LoRA weights for SD-2.1-base: run `4kagent models convert osediff --base SD21_BASE_DIR`"),
    ModelEntry("pisa-sr", "super-resolution", 4, "PiSA-SR", "see https://github.com/csslc/PiSA-SR",
               "https://drive.google.com/drive/folders/1oLetijWNd59xwJE5oU-eXylQBifxWdss", "pisa_sr.pkl",
               preference="perception", loader="diffusers", direct=False,
               note="dual LoRA for SD-2.1-base on Google Drive: `models add pisa_sr.pkl`, then "
                    "`4kagent models convert pisa-sr --base SD21_BASE_DIR`"),
    ModelEntry("x-restormer", "denoising", 1, "X-Restormer", "see https://github.com/Andrew0613/X-Restormer",
               "https://github.com/Andrew0613/X-Restormer", "X-Restormer.pth", loader="spandrel-extra", direct=False,
               slow=True, note="no spandrel architecture (neither core nor extra); weights linked from the repo README"),
)
"""The paper's toolbox experts with published weights."""

_PYIQA_NC = "CC BY-NC-SA 4.0 / upstream (IQA-PyTorch weights)"

METRICS: tuple[MetricFile, ...] = (
    MetricFile("hpsv2.1", "HPS_v2.1_compressed.pt", "https://huggingface.co/xswu/HPSv2/resolve/main/HPS_v2.1_compressed.pt",
               "hf", "Apache-2.0", hf_repo="xswu/HPSv2", approx_mb=1700),
    MetricFile("clipiqa+", "CLIP-IQA+_learned_prompts-603f3273.pth", _HF_PYIQA + "CLIP-IQA+_learned_prompts-603f3273.pth",
               "pyiqa", _PYIQA_NC),
    MetricFile("clipiqa+", "RN50.pt", "https://openaipublic.azureedge.net/clip/models/"
               "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt", "clip", "MIT",
               sha256="afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762", approx_mb=244),
    # pyiqa's "maniqa" is the KonIQ-trained checkpoint; its ViT backbone is fetched by timm at creation
    MetricFile("maniqa", "ckpt_koniq10k.pt", _HF_PYIQA + "ckpt_koniq10k.pt", "pyiqa", _PYIQA_NC),
    MetricFile("maniqa", "model.safetensors",
               "https://huggingface.co/timm/vit_base_patch8_224.augreg2_in21k_ft_in1k/resolve/main/model.safetensors",
               "hf", "Apache-2.0", hf_repo="timm/vit_base_patch8_224.augreg2_in21k_ft_in1k", approx_mb=350),
    MetricFile("musiq", "musiq_koniq_ckpt-e95806b9.pth", _HF_PYIQA + "musiq_koniq_ckpt-e95806b9.pth", "pyiqa", _PYIQA_NC),
    MetricFile("niqe", "niqe_modelparameters.mat", _HF_PYIQA + "niqe_modelparameters.mat", "pyiqa", _PYIQA_NC),
    MetricFile("topiq_nr", "cfanet_nr_koniq_res50-9a73138b.pth", _HF_PYIQA + "cfanet_nr_koniq_res50-9a73138b.pth",
               "pyiqa", _PYIQA_NC),
)
"""Weights of the paper's learned metrics; pulled by metric name into pyiqa's / CLIP's / the HF hub cache.

HPSv2.1 needs only its own checkpoint: it holds the whole ViT-H-14 CLIP state dict, so the LAION
pretrained file the reference also loads (3.9 GB) is overwritten entirely and is not pulled.
``niqe`` is pyiqa's NIQE with the original pristine parameters (the reference's), not fourkagent's own."""

METRIC_NAMES: tuple[str, ...] = tuple(dict.fromkeys(m.metric for m in METRICS))


def find_model(name: str) -> ModelEntry | None:
    """The catalogue entry called ``name`` (or whose file is called ``name``), else None."""
    key = name.strip().lower()
    return next((m for m in MODELS if key in (m.name, m.file.lower())), None)


def metric_files(metric: str) -> tuple[MetricFile, ...]:
    """Every file metric ``metric`` needs (empty for an unknown metric)."""
    return tuple(m for m in METRICS if m.metric == metric.strip().lower())
