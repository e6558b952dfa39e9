"""Model families behind one interface (`RetrievalModel`), built by name from their config dataclass.

Importing this package registers every family (`vsrn`, `starnet`) in `FAMILIES`.
"""

from stacmr.models import starnet, vsrn  # noqa: F401  (imported to register the families)
from stacmr.models.base import CaptionBatch, ImageBatch, RetrievalModel
from stacmr.models.registry import FAMILIES, build_model, config_class

__all__ = ["FAMILIES", "CaptionBatch", "ImageBatch", "RetrievalModel", "build_model", "config_class"]
