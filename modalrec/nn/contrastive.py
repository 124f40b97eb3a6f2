"""Self-supervised losses between two views of the same users or items."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def info_nce(anchors: Tensor, candidates: Tensor, positives: Tensor, temperature: float) -> Tensor:
    r"""InfoNCE per anchor, on cosine similarities, with the positive among the candidates:

    .. math::
        \ell_b = -\log \frac{\exp(s(\mathbf a_b, \mathbf c_{p_b})/\tau)}{\sum_{c} \exp(s(\mathbf a_b, \mathbf c)/\tau)}

    with :math:`s` the cosine similarity and :math:`p_b` the row of anchor b's positive in ``candidates``
    (the other view of the same user or item). The caller sums or averages.

    Shapes: anchors (B, d), candidates (C, d), positives (B,) long -> (B,).
    """
    logits = (F.normalize(anchors, dim=1) / temperature) @ F.normalize(candidates, dim=1).T  # (B, C)
    return F.cross_entropy(logits, positives, reduction="none")


def bootstrap_loss(online: Tensor, target: Tensor) -> Tensor:
    r"""BYOL/BM3's negative-cosine loss, shifted to be non-negative:
    :math:`\frac1B\sum_b 1 - \cos(\mathbf o_b, \mathrm{sg}(\mathbf t_b))`, in [0, 2].

    The target is detached (stop-gradient): only the online side learns.

    Shapes: (B, d), (B, d) -> scalar.
    """
    return 1.0 - F.cosine_similarity(online, target.detach(), dim=-1).mean()
