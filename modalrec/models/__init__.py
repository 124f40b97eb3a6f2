"""Recommender models; importing this package registers each built-in one."""

from modalrec.models import bpr, lightgcn, vbpr  # noqa: F401
from modalrec.models.base import Embeddings, ModelInputs, Recommender, TrainBatch
from modalrec.models.registry import available_models, get_model, register_model

__all__ = ["Embeddings", "ModelInputs", "Recommender", "TrainBatch", "available_models", "get_model", "register_model"]
