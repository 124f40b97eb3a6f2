"""Recommender models; importing this package registers each built-in one."""

from modalrec.models import bm3, bpr, freedom, lattice, lens, lgmrec, lightgcn, mmal, mmdfm, mmgcn, smore, vbpr  # noqa: F401
from modalrec.models import aldi, clcrec, coldbridge, contentknn, contentmf, dropoutnet, gar, heater  # noqa: F401  (cold start)
from modalrec.models import itemknn, popularity  # noqa: F401  (non-neural baselines)
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.capabilities import Capabilities
from modalrec.models.registry import available_models, capabilities_of, get_model, register_model

__all__ = ["Capabilities", "Embeddings", "ModelInputs", "Recommender", "TrainBatch", "available_models",
           "capabilities_of", "get_model", "register_model"]
