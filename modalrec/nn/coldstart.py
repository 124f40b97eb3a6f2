"""Building blocks shared by the cold-start models: a warm ID backbone, content encoders and the estimate
of a cold item's collaborative vector from its warm content neighbours."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalrec.errors import ConfigError
from modalrec.nn.graph import normalized_adjacency
from modalrec.nn.losses import bpr_loss, l2_penalty
from modalrec.nn.precision import ContentLinear
from modalrec.nn.sparse import mean_of_layers


class WarmBackbone(nn.Module):
    r"""The warm recommender a cold-start model refines: user and item ID vectors whose dot product scores
    warm items.

    Either trained here with BPR, as matrix factorisation (``num_layers=0``) or LightGCN
    (:math:`\frac{1}{L+1}\sum_l \hat A^l \mathbf E`), or ``frozen``: the (users, items) vectors of a
    finished run, never updated. Cold items (no training interaction) get a zero vector either way, since
    their ID rows carry no information.

    Shapes: vectors (U, d), (I, d); ``warm`` (I, 1).
    """

    warm: Tensor
    adjacency: Tensor
    frozen_users: Tensor
    frozen_items: Tensor

    def __init__(self, num_users: int, num_items: int, train_users: Tensor, train_items: Tensor, dim: int,
                 *, num_layers: int = 0, frozen: tuple[Tensor, Tensor] | None = None) -> None:
        super().__init__()
        self.num_users, self.num_items, self.num_layers = num_users, num_items, num_layers
        warm = torch.zeros(num_items, 1)
        warm[train_items.long()] = 1.0
        self.register_buffer("warm", warm, persistent=False)
        self.frozen = frozen is not None
        if frozen is not None:
            users, items = frozen
            if users.shape[0] != num_users or items.shape[0] != num_items or users.shape[1] != items.shape[1]:
                raise ConfigError("model.backbone_run", f"the backbone has {users.shape[0]} users x {items.shape[0]} "
                                  f"items, this data {num_users} x {num_items}")
            self.register_buffer("frozen_users", users.detach().float().clone(), persistent=False)
            self.register_buffer("frozen_items", items.detach().float().clone() * warm, persistent=False)
            self.dim = users.shape[1]
            return
        self.dim = dim
        self.user_embedding = nn.Embedding(num_users, dim)
        self.item_embedding = nn.Embedding(num_items, dim)
        nn.init.xavier_uniform_(self.user_embedding.weight)
        nn.init.xavier_uniform_(self.item_embedding.weight)
        if num_layers > 0:
            self.register_buffer("adjacency", normalized_adjacency(num_users, num_items, train_users, train_items),
                                 persistent=False)

    def start_from(self, users: Tensor, items: Tensor) -> None:
        """Start a trained-here MF backbone from a finished run's vectors (which then keep training)."""
        if self.frozen or self.num_layers:
            raise ValueError("only a trained-here matrix factorisation backbone starts from given vectors")
        if users.shape != self.user_embedding.weight.shape or items.shape != self.item_embedding.weight.shape:
            raise ConfigError("model.backbone_run", f"the backbone has {users.shape[0]} users x {items.shape[0]} "
                              f"items of {users.shape[1]} dimensions, this model {self.num_users} x {self.num_items} "
                              f"of {self.dim}")
        with torch.no_grad():
            self.user_embedding.weight.copy_(users)
            self.item_embedding.weight.copy_(items * self.warm)

    def vectors(self) -> tuple[Tensor, Tensor]:
        """(user vectors (U, d), item vectors (I, d)), cold items zero."""
        if self.frozen:
            return self.frozen_users, self.frozen_items
        items = self.warm * self.item_embedding.weight
        if self.num_layers == 0:
            return self.user_embedding.weight, items
        nodes = mean_of_layers(self.adjacency, torch.cat([self.user_embedding.weight, items]), self.num_layers)
        users, items = torch.split(nodes, [self.num_users, self.num_items])
        return users, items

    def bpr(self, users: Tensor, positives: Tensor, negatives: Tensor, reg_weight: float) -> Tensor:
        """BPR on the batch with L2 on its ID rows; 0 for a frozen backbone. Shapes: (B,) long each -> scalar."""
        if self.frozen:
            return self.warm.new_zeros(())
        user_vectors, item_vectors = self.vectors()
        user = user_vectors.index_select(0, users)
        ranking = bpr_loss((user * item_vectors.index_select(0, positives)).sum(1),
                           (user * item_vectors.index_select(0, negatives)).sum(1))
        return ranking + reg_weight * l2_penalty(self.user_embedding(users), self.item_embedding(positives),
                                                 self.item_embedding(negatives))


class MLP(nn.Sequential):
    """Linear layers with tanh between them (and after the last one when ``final_tanh``). The first layer is a
    :class:`~modalrec.nn.precision.ContentLinear`, so a content encoder also takes a bfloat16 training copy.

    Shapes: (N, sizes[0]) -> (N, sizes[-1]).
    """

    def __init__(self, sizes: list[int], *, final_tanh: bool = False) -> None:
        layers: list[nn.Module] = []
        for index, (size_in, size_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append((ContentLinear if index == 0 else nn.Linear)(size_in, size_out))
            if index < len(sizes) - 2 or final_tanh:
                layers.append(nn.Tanh())
        super().__init__(*layers)


def warm_neighbour_weights(query: Tensor, catalogue: Tensor, warm: Tensor, k: int,
                           query_rows: Tensor | None = None) -> Tensor:
    r"""Row-normalised weights over each query item's ``k`` most similar *warm* catalogue items by cosine
    similarity of their content (negative similarities count 0), so :math:`W\mathbf E` estimates a
    collaborative vector from content neighbours. ``query_rows`` gives the catalogue row of each query
    item, which is never its own neighbour (a cold item never is: it is not warm).

    Shapes: query (N, F), catalogue (I, F), warm (I, 1), query_rows (N,) -> (N, I) dense, rows summing to 1 or 0.
    """
    similarity = F.normalize(query, dim=1) @ F.normalize(catalogue, dim=1).T  # (N, I)
    similarity = similarity.masked_fill(warm.T == 0, -torch.inf)
    if query_rows is not None:
        similarity[torch.arange(len(query_rows)), query_rows] = -torch.inf
    values, columns = similarity.topk(min(k, int(warm.sum().item()) or 1), dim=1)
    values = torch.nan_to_num(values.clamp(min=0.0), neginf=0.0)
    weights = torch.zeros_like(similarity).scatter_(1, columns, values)
    return weights / weights.sum(1, keepdim=True).clamp(min=1e-12)


def encode_items(encoder: nn.Module, content: Tensor, items: Tensor) -> Tensor:
    """``encoder(content[items])``, running the encoder once per distinct item (a batch repeats items).

    Shapes: content (I, F), items (B,) long -> (B, d).
    """
    distinct, rows = torch.unique(items, return_inverse=True)
    encoded: Tensor = encoder(content.index_select(0, distinct))
    return encoded.index_select(0, rows)


def pair_item_scores(user: Tensor, item: Tensor) -> Tensor:
    """Row-wise dot products. Shapes: (B, d), (B, d) -> (B,)."""
    return (user * item).sum(1)


__all__ = ["MLP", "WarmBackbone", "encode_items", "pair_item_scores", "warm_neighbour_weights"]
