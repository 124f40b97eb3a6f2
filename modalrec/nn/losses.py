"""Pairwise ranking loss and embedding regularisation."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def bpr_loss(positive_scores: Tensor, negative_scores: Tensor) -> Tensor:
    r"""Bayesian Personalised Ranking: :math:`-\frac1B\sum \ln \sigma(\hat y_{ui} - \hat y_{uj})`."""
    return F.softplus(negative_scores - positive_scores).mean()


def l2_penalty(*tensors: Tensor) -> Tensor:
    r"""Half the squared L2 norm of the batch's embeddings, averaged over the batch:
    :math:`\frac{1}{2B}\sum_t \lVert t \rVert_2^2` with B the first dimension of the first tensor."""
    batch = tensors[0].shape[0]
    return sum(t.pow(2).sum() for t in tensors) / (2 * batch)  # type: ignore[return-value]
