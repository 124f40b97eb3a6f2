"""Shared building blocks: graph propagation and losses."""

from modalrec.nn.graph import normalized_adjacency, propagate
from modalrec.nn.losses import bpr_loss, l2_penalty

__all__ = ["bpr_loss", "l2_penalty", "normalized_adjacency", "propagate"]
