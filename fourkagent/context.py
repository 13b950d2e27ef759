"""Runtime settings passed as LangGraph context (not part of the checkpointed state)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from fourkagent.devices import parse
from fourkagent.errors import RunError


def default_home() -> str:
    """``$FOURKAGENT_HOME`` or ``~/.fourkagent``: runs, checkpoints and experience live here."""
    return os.environ.get("FOURKAGENT_HOME") or str(Path.home() / ".fourkagent")


def default_cache_dir(kind: str = "weights") -> Path:
    """``$FOURKAGENT_CACHE/<kind>`` if set, else ``~/.cache/fourkagent/<kind>`` (derived files, downloads)."""
    env = os.environ.get("FOURKAGENT_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "fourkagent") / kind


@dataclass(kw_only=True)
class Context:
    """Settings for one invocation; environment variables fill unset fields."""

    home: str = field(default="", metadata={"description": "Work directory for runs and checkpoints."})
    model_dir: str = field(default="", metadata={"description": "Directory of user-installed model weights."})
    vlm_base_url: str = field(default="", metadata={"description": "OpenAI-compatible endpoint for the VLM perceiver."})
    vlm_model: str = field(default="", metadata={"description": "Model name at that endpoint."})
    vlm_api_key: str = field(default="", metadata={"description": "API key for the endpoint (any string for local servers)."})
    vlm_timeout: float = field(default=0.0, metadata={"description": "Seconds per VLM call before falling back (0 = 60)."})
    iqa_metrics: str = field(
        default="", metadata={"description": "Comma-separated NR-IQA metrics to report (default clipiqa+,topiq_nr,musiq,niqe,piqe)."}
    )
    threads: int = field(default=0, metadata={"description": "CPU threads for tools (0 = all cores)."})
    device: str = field(
        default="", metadata={"description": "Torch device for neural tools: auto (CUDA if available), cpu, cuda, cuda:N, mps."}
    )
    review_plan: bool = field(
        default=False, metadata={"description": "Pause after the first plan so a person can approve or edit it."}
    )
    review_compromise: bool = field(
        default=False, metadata={"description": "Pause when every ordering failed, to go on from the best image or stop."}
    )
    experience_url: str = field(
        default="", metadata={"description": "SQLAlchemy URL of the experience store (default SQLite in home)."}
    )
    checkpoint_url: str = field(
        default="", metadata={"description": "postgresql:// URL of the CLI's checkpointer (default SQLite in home)."}
    )
    use_experience: bool = field(
        default=True, metadata={"description": "Let past runs on similar images shape the plan."}
    )

    def __post_init__(self) -> None:
        """Fill unset fields from FOURKAGENT_* environment variables."""
        env = os.environ.get
        self.home = self.home or default_home()
        self.model_dir = self.model_dir or env("FOURKAGENT_MODEL_DIR", str(Path(self.home) / "models"))
        self.vlm_base_url = self.vlm_base_url or env("FOURKAGENT_VLM_BASE_URL", "")
        self.vlm_model = self.vlm_model or env("FOURKAGENT_VLM_MODEL", "")
        self.vlm_api_key = self.vlm_api_key or env("FOURKAGENT_VLM_API_KEY", "")
        timeout = self.vlm_timeout or env("FOURKAGENT_VLM_TIMEOUT", "") or 60.0
        try:
            self.vlm_timeout = float(timeout)
        except ValueError:
            self.vlm_timeout = -1.0
        if not self.vlm_timeout > 0:
            raise RunError(f"the VLM timeout must be a positive number of seconds, got {timeout!r}")
        self.iqa_metrics = self.iqa_metrics or env("FOURKAGENT_IQA_METRICS", "")
        self.threads = self.threads or int(env("FOURKAGENT_THREADS", "0") or 0)
        self.device = parse(self.device or env("FOURKAGENT_DEVICE", ""))  # syntax only: no torch import here
        self.experience_url = self.experience_url or env(
            "FOURKAGENT_EXPERIENCE_URL", f"sqlite:///{Path(self.home) / 'experience.sqlite'}"
        )
        self.checkpoint_url = self.checkpoint_url or env("FOURKAGENT_CHECKPOINT_URL", "")
        if env("FOURKAGENT_EXPERIENCE", "1").strip().lower() in ("0", "false", "no", "off"):
            self.use_experience = False
