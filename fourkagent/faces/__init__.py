"""Face pipeline: detection with 5 landmarks, alignment, face experts, identity-preserving score, paste-back."""

from fourkagent.faces.pipeline import reference_faces, restore_faces

__all__ = ["reference_faces", "restore_faces"]
