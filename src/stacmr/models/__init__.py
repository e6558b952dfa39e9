"""Model families behind one interface (`RetrievalModel`), built by name from their config dataclass.

Importing this package registers every family (`vsrn`, `starnet`, `chan`, `chan_st`, `chan_char`,
`chan_char_st`, `dsve`, `qformer`, `qformer_st`) in `FAMILIES`.
"""

from stacmr.models import chan, chan_char, dsve, qformer, starnet, vsrn  # noqa: F401  (imported to register the families)
from stacmr.models.base import CaptionBatch, DataDims, ImageBatch, RetrievalModel, VectorSets
from stacmr.models.registry import (
    FAMILIES,
    build_model,
    check_models,
    config_class,
    family_class,
    model_config,
)

__all__ = [
    "FAMILIES",
    "CaptionBatch",
    "DataDims",
    "ImageBatch",
    "RetrievalModel",
    "VectorSets",
    "build_model",
    "check_models",
    "config_class",
    "family_class",
    "model_config",
]
