"""One exception family: the CLI prints the message on one line, the library raises."""

from __future__ import annotations


class FourKError(Exception):
    """Base class of every error fourkagent raises on purpose."""


class BadInputError(FourKError):
    """The input image is missing, unreadable or unsupported."""


class ProfileError(FourKError):
    """A profile name is unknown or a profile file is malformed."""


class ToolError(FourKError):
    """A restoration tool failed or produced an invalid image."""


class MissingWeightsError(FourKError):
    """A tool or metric needs weights that are not installed."""


class ArtifactError(FourKError):
    """An artifact is missing from the store or fails its hash check."""


class RunError(FourKError):
    """A run cannot be started or resumed (unknown run id, existing output...)."""


class WeightsError(MissingWeightsError):
    """A weights file exists but is refused: hash mismatch (tampered or corrupted), bad format, unsafe content."""
