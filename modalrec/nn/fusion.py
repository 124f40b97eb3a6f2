r"""Fusing an item's ID embedding with its modality embeddings: early, late, hybrid and attention fusion.

Conventions shared by every module here:

- **Sources.** An item is described by S = 1 + M *sources* in the order ``[id, modality_1, ..., modality_M]``,
  stacked as a tensor (N, S, d) of one common width d. :class:`ModalityProjection` brings feature tables to
  that width. A model zeroes the ID source of cold items, so they are scored from content alone.
- **Blocks.** A fusion turns the sources into K *item blocks* (N, K, d). The user side has K *user blocks*
  (B, K, d): K separate vectors, or one vector repeated, as the model chooses. The score is a weighted sum of
  per-block dot products, with weights that may depend on a user *query* vector (B, q):

  .. math:: \hat y_{ui} = \sum_{k=1}^{K} w_k(u)\, \langle \mathbf u_k, \mathbf i_k \rangle

- **Modality weights** (for explanations). Where a mode weighs the sources at the score level,
  :meth:`Fusion.source_weights` returns them, non-negative and summing to 1 over the S sources, with shape
  (B, N, S) and sources in the order above. Early fusion has no such weights and returns None. In the score
  they are multiplied by S, so equal weights give the plain sum of the per-source scores (the early ``sum``
  score with separate user vectors); a softmax average would shrink scores and gradients S-fold and slow
  training down.

Which modes factor into ``user_vector @ item_vector`` (full ranking is one matrix product, nearest-neighbour
serving is exact): the weights then go to the user side, :math:`\mathbf u' = [w_1\mathbf u_1, \dots,
w_K\mathbf u_K]` against :math:`\mathbf i' = [\mathbf i_1, \dots, \mathbf i_K]`.

==========================  =====  ==========================================  =======
mode                        K      weights                                     factors
==========================  =====  ==========================================  =======
early                       1      none (fused item vector)                    yes
late                        S      fixed or learned, global                    yes
hybrid                      1 + S  1 for the early block, late weights after   yes
attention (user)            S      :math:`a_{us}`, from the user               yes
attention (user and item)   S      :math:`a_{uis}`, from the user and item     no
==========================  =====  ==========================================  =======

For the one mode that does not factor, :meth:`Fusion.score_all` computes the (B, N) scores directly in item
chunks, so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from modalrec.errors import ConfigError, ModalrecError

FUSION_MODES = ("early", "late", "hybrid", "attention")
EARLY_COMBINES = ("sum", "concat")
CHUNK_ELEMENTS = 1 << 24  # largest intermediate tensor (in elements) when scoring pairs that do not factor


def check_choice(key: str, value: str, choices: Sequence[str]) -> None:
    """Raise ConfigError naming ``key``, the allowed ``choices`` and the value found."""
    if value not in choices:
        raise ConfigError(key, f"expected one of {', '.join(choices)}; got '{value}'")


def item_chunks(num_items: int, elements_per_item: int) -> Iterator[slice]:
    """Slices over items such that a chunk's intermediate tensor holds at most ``CHUNK_ELEMENTS`` numbers."""
    size = max(1, CHUNK_ELEMENTS // max(1, elements_per_item))
    for start in range(0, num_items, size):
        yield slice(start, min(start + size, num_items))


class ModalityProjection(nn.Module):
    """One small network per modality, bringing each feature table to the common width d.

    Args:
        input_dims: feature size of each modality, F_1..F_M.
        output_dim: d.
        hidden_dim: width of one hidden ReLU layer; 0 (default) means a linear projection.

    Shapes: a sequence of M tables (N, F_m) -> (N, M, d).
    """

    def __init__(self, input_dims: Sequence[int], output_dim: int, hidden_dim: int = 0) -> None:
        super().__init__()
        self.networks = nn.ModuleList(
            nn.Linear(dim, output_dim)
            if hidden_dim == 0
            else nn.Sequential(nn.Linear(dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, output_dim))
            for dim in input_dims
        )

    def forward(self, tables: Sequence[Tensor]) -> Tensor:
        return torch.stack([network(table) for network, table in zip(self.networks, tables, strict=True)], dim=1)


class Fusion(nn.Module):
    """Base class: score = Σ_k w_k <user block k, item block k>; subclasses define the blocks and weights.

    Args:
        num_sources: S, the ID plus the M modalities.

    Shapes: sources (N, S, d); user blocks (B, K, d); query (B, q); weights (B, K).
    """

    num_blocks: int
    factorizes: bool = True

    def __init__(self, num_sources: int) -> None:
        super().__init__()
        self.num_sources = num_sources

    def item_blocks(self, sources: Tensor) -> Tensor:
        """(N, S, d) -> (N, K, d)."""
        raise NotImplementedError

    def block_weights(self, query: Tensor) -> Tensor:
        """Score-level weight of each block for each user: (B, q) -> (B, K)."""
        raise NotImplementedError

    def source_weights(self, query: Tensor, sources: Tensor) -> Tensor | None:
        """Modality weights for explanation, (B, N, S) summing to 1 over S; None where the mode has none."""
        return None

    def user_vectors(self, user_blocks: Tensor, query: Tensor) -> Tensor:
        """The user side of the dot product, weights folded in: (B, K, d), (B, q) -> (B, K*d)."""
        return (self.block_weights(query).unsqueeze(-1) * user_blocks).flatten(1)

    def item_vectors(self, sources: Tensor) -> Tensor:
        """The item side of the dot product: (N, S, d) -> (N, K*d)."""
        return self.item_blocks(sources).flatten(1)

    def pair_weights(self, query: Tensor, sources: Tensor) -> Tensor:
        """Score-level weight of each block for matched pairs (row b of each input): (B, q), (B, S, d) -> (B, K)."""
        return self.block_weights(query)

    def score_pairs(self, user_blocks: Tensor, query: Tensor, sources: Tensor) -> Tensor:
        """Scores of matched pairs (row b of each input): (B, K, d), (B, q), (B, S, d) -> (B,)."""
        return (self.user_vectors(user_blocks, query) * self.item_vectors(sources)).sum(1)

    def score_all(self, user_blocks: Tensor, query: Tensor, sources: Tensor) -> Tensor:
        """Every user against every item: (B, K, d), (B, q), (N, S, d) -> (B, N)."""
        return self.user_vectors(user_blocks, query) @ self.item_vectors(sources).T


class EarlyFusion(Fusion):
    r"""Combine the sources at the input into one item vector: their sum, or an MLP over their concatenation.

    ``combine="sum"`` gives :math:`\mathbf i = \sum_s \mathbf x_s` (a factorization machine's cross terms
    with the user); ``"concat"`` gives :math:`\mathbf i = W_2\,\mathrm{ReLU}(W_1[\mathbf x_1;\dots;\mathbf x_S])`.

    Args:
        num_sources: S.
        dim: d, the common width (also the MLP's hidden width).
        combine: ``"sum"`` (default) or ``"concat"``.

    Shapes: sources (N, S, d) -> fused (N, d); K = 1 block.
    """

    num_blocks = 1

    def __init__(self, num_sources: int, dim: int, combine: str = "sum") -> None:
        super().__init__(num_sources)
        check_choice("combine", combine, EARLY_COMBINES)
        self.combine = combine
        self.mlp = (
            nn.Sequential(nn.Linear(num_sources * dim, dim), nn.ReLU(), nn.Linear(dim, dim))
            if combine == "concat"
            else None
        )

    def fuse(self, sources: Tensor) -> Tensor:
        if self.mlp is None:
            return sources.sum(1)
        return self.mlp(sources.flatten(1))  # (N, S*d) -> (N, d)

    def item_blocks(self, sources: Tensor) -> Tensor:
        return self.fuse(sources).unsqueeze(1)

    def block_weights(self, query: Tensor) -> Tensor:
        return query.new_ones(query.shape[0], 1)


class LateFusion(Fusion):
    r"""One scorer per source; the final score is their weighted sum :math:`S \sum_s w_s \langle\mathbf u_s,
    \mathbf i_s\rangle` with global weights :math:`w = \mathrm{softmax}(\boldsymbol\ell)` (learned, starting
    equal) or fixed ones.

    Args:
        num_sources: S.
        weights: fixed weights (normalised to sum to 1); None (default) learns them.

    Shapes: K = S blocks; weights (B, S), the same for every user.
    """

    fixed_weights: Tensor

    def __init__(self, num_sources: int, weights: Sequence[float] | None = None) -> None:
        super().__init__(num_sources)
        self.num_blocks = num_sources
        if weights is not None and (len(weights) != num_sources or min(weights) < 0 or sum(weights) <= 0):
            raise ConfigError("weights", f"expected {num_sources} non-negative weights, not all 0; got {weights}")
        self.logits = nn.Parameter(torch.zeros(num_sources)) if weights is None else None
        fixed = torch.zeros(0) if weights is None else torch.tensor(weights, dtype=torch.float32) / sum(weights)
        self.register_buffer("fixed_weights", fixed)

    def weights(self) -> Tensor:
        """(S,) non-negative, summing to 1."""
        return self.fixed_weights if self.logits is None else torch.softmax(self.logits, 0)

    def item_blocks(self, sources: Tensor) -> Tensor:
        return sources

    def block_weights(self, query: Tensor) -> Tensor:
        return self.num_sources * self.weights().expand(query.shape[0], -1)

    def source_weights(self, query: Tensor, sources: Tensor) -> Tensor:
        return self.weights().expand(query.shape[0], sources.shape[0], -1)


class HybridFusion(Fusion):
    r"""Combination at two depths: an early-fused block plus one late-fused block per source,
    :math:`\langle\mathbf u_0, \mathrm{early}(\mathbf x)\rangle + S\sum_s w_s\langle\mathbf u_s, \mathbf x_s\rangle`.

    Args:
        num_sources: S.
        dim: d.
        combine: the early part's ``"sum"`` or ``"concat"``.
        weights: the late part's fixed weights, None to learn them.

    Shapes: K = 1 + S blocks (the early block first); source weights are the late part's.
    """

    def __init__(
        self, num_sources: int, dim: int, combine: str = "sum", weights: Sequence[float] | None = None
    ) -> None:
        super().__init__(num_sources)
        self.num_blocks = 1 + num_sources
        self.early = EarlyFusion(num_sources, dim, combine)
        self.late = LateFusion(num_sources, weights)

    def item_blocks(self, sources: Tensor) -> Tensor:
        return torch.cat([self.early.item_blocks(sources), sources], dim=1)

    def block_weights(self, query: Tensor) -> Tensor:
        return torch.cat([self.early.block_weights(query), self.late.block_weights(query)], dim=1)

    def source_weights(self, query: Tensor, sources: Tensor) -> Tensor:
        return self.late.source_weights(query, sources)


class AttentionFusion(Fusion):
    r"""Attention over the sources, conditioned on the user and optionally on the item's sources.

    In the form of ACF's component-level attention (Chen et al., SIGIR 2017), with one output vector
    :math:`\mathbf w_s` per source so that the user term does not cancel in the softmax, and a logit
    :math:`c_s` per source shared by all users:

    .. math::
        a_{u s} = \mathrm{softmax}_s\big(c_s + \phi(\mathbf w_s^\top \mathrm{ReLU}(W_q \mathbf q_u + \mathbf b))\big)
        \quad\text{(user)},\qquad
        a_{u i s} = \mathrm{softmax}_s\big(c_s + \phi(\mathbf w_s^\top \mathrm{ReLU}(W_q \mathbf q_u
        + W_x \mathbf x_{is} + \mathbf b))\big) \quad\text{(user and item)}

    with :math:`\phi = \tanh` when ``bounded`` (default) and the identity otherwise. Unbounded, the
    attention can collapse: every user puts nearly all weight on one source, which leaves the other sources
    untrained. Bounded, the shared
    :math:`c_s` learn how much each source counts overall and each user's term moves that by at most
    :math:`\pm 1` in logit.

    The score is :math:`S \sum_s a \,\langle\mathbf u_s, \mathbf x_{is}\rangle` (S times a weighted mean, see
    the module notes). Conditioned on the user only, it factors; with the item too it does not, and
    :meth:`score_all` evaluates the pairs in item chunks.

    Args:
        num_sources: S.
        query_dim: q, the size of the user query vector.
        source_dim: d, the sources' width.
        attention_dim: h, the attention MLP's hidden width (default 32).
        condition_on_item: also condition on the item's sources (default False, which factors).
        bounded: pass the user (and item) term through tanh (default True).
        shared_logits: learn the shared :math:`c_s` (default True); False keeps them at 0.

    Shapes: K = S blocks; weights (B, S) (user) or (B, N, S) (user and item).
    """

    def __init__(
        self,
        num_sources: int,
        query_dim: int,
        source_dim: int,
        attention_dim: int = 32,
        condition_on_item: bool = False,
        bounded: bool = True,
        shared_logits: bool = True,
    ) -> None:
        super().__init__(num_sources)
        self.num_blocks = num_sources
        self.factorizes = not condition_on_item
        self.query_projection = nn.Linear(query_dim, attention_dim)  # W_q, b
        self.item_projection = nn.Linear(source_dim, attention_dim, bias=False) if condition_on_item else None  # W_x
        self.source_outputs = nn.Parameter(torch.empty(num_sources, attention_dim))  # w_s
        nn.init.normal_(self.source_outputs, std=attention_dim**-0.5)
        self.source_logits = nn.Parameter(torch.zeros(num_sources), requires_grad=shared_logits)  # c_s
        self.bounded = bounded

    def _softmax(self, hidden: Tensor) -> Tensor:
        """softmax over sources of c_s + w_s·ReLU(hidden), the second term through tanh when ``bounded``:
        (..., S or 1, h) -> (..., S)."""
        personal = (torch.relu(hidden) * self.source_outputs).sum(-1)
        return torch.softmax(self.source_logits + (torch.tanh(personal) if self.bounded else personal), dim=-1)

    def _user_weights(self, query: Tensor) -> Tensor:
        return self._softmax(self.query_projection(query).unsqueeze(1))  # (B, S)

    def _chunked_weights(self, query: Tensor, keys: Tensor) -> Iterator[tuple[slice, Tensor]]:
        """Item-conditioned weights of every user for every item, one chunk of items at a time: (B, n, S).

        Shapes: query (B, q), item keys W_x x (N, S, h).
        """
        projected = self.query_projection(query)[:, None, None, :]  # (B, 1, 1, h)
        for part in item_chunks(len(keys), query.shape[0] * keys.shape[1] * keys.shape[2]):
            yield part, self._softmax(projected + keys[part])

    def item_blocks(self, sources: Tensor) -> Tensor:
        return sources

    def block_weights(self, query: Tensor) -> Tensor:
        if self.item_projection is not None:
            raise ModalrecError("attention conditioned on the item has no per-user weights: it does not factor")
        return self.num_sources * self._user_weights(query)

    def source_weights(self, query: Tensor, sources: Tensor) -> Tensor:
        if self.item_projection is None:
            return self._user_weights(query).unsqueeze(1).expand(-1, sources.shape[0], -1)
        keys = self.item_projection(sources)
        return torch.cat([weights for _, weights in self._chunked_weights(query, keys)], dim=1)

    def pair_weights(self, query: Tensor, sources: Tensor) -> Tensor:
        if self.item_projection is None:
            return super().pair_weights(query, sources)
        hidden = self.query_projection(query).unsqueeze(1) + self.item_projection(sources)  # (B, S, h)
        return self.num_sources * self._softmax(hidden)

    def score_pairs(self, user_blocks: Tensor, query: Tensor, sources: Tensor) -> Tensor:
        if self.item_projection is None:
            return super().score_pairs(user_blocks, query, sources)
        return (self.pair_weights(query, sources) * (user_blocks * sources).sum(-1)).sum(1)

    def score_all(self, user_blocks: Tensor, query: Tensor, sources: Tensor) -> Tensor:
        if self.item_projection is None:
            return super().score_all(user_blocks, query, sources)
        parts = []
        for part, weights in self._chunked_weights(query, self.item_projection(sources)):  # (B, n, S)
            per_source = torch.einsum("bsd,nsd->bns", user_blocks, sources[part])  # (B, n, S)
            parts.append(self.num_sources * (weights * per_source).sum(-1))
        return torch.cat(parts, dim=1)


def fusion_blocks(mode: str, num_sources: int) -> int:
    """K, the number of blocks ``mode`` gives each side (user blocks a model must provide)."""
    check_choice("fusion", mode, FUSION_MODES)
    return {"early": 1, "hybrid": 1 + num_sources}.get(mode, num_sources)


def make_fusion(
    mode: str,
    *,
    num_sources: int,
    dim: int,
    query_dim: int,
    combine: str = "sum",
    attention_dim: int = 32,
    condition_on_item: bool = False,
    bounded_attention: bool = True,
) -> Fusion:
    """The fusion module for ``mode`` (one of :data:`FUSION_MODES`); late weights are learned.

    Raises:
        ConfigError: for an unknown mode or combine, listing the choices.
    """
    check_choice("fusion", mode, FUSION_MODES)
    if mode == "early":
        return EarlyFusion(num_sources, dim, combine)
    if mode == "late":
        return LateFusion(num_sources)
    if mode == "hybrid":
        return HybridFusion(num_sources, dim, combine)
    return AttentionFusion(num_sources, query_dim, dim, attention_dim, condition_on_item, bounded_attention)


class PairMLP(nn.Module):
    r"""An MLP over the concatenation of a user input and an item input, giving one score per pair (the deep
    part of DeepFM-like models). Its first layer is split, :math:`W[\mathbf x_u; \mathbf x_i] = W_u\mathbf x_u +
    W_i\mathbf x_i`, so all-pairs scoring projects users and items once and chunks only the later layers.

    Args:
        user_dim: size of the user input.
        item_dim: size of the item input.
        hidden_dims: widths of the ReLU layers (at least one); a linear layer to 1 follows.

    Shapes: pairs (B, user_dim), (B, item_dim) -> (B,); all pairs (B, user_dim), (N, item_dim) -> (B, N).
    """

    def __init__(self, user_dim: int, item_dim: int, hidden_dims: Sequence[int]) -> None:
        super().__init__()
        if not hidden_dims or min(hidden_dims) < 1:
            raise ConfigError("hidden_dims", f"expected at least one positive width, got {tuple(hidden_dims)}")
        self.user_input = nn.Linear(user_dim, hidden_dims[0])
        self.item_input = nn.Linear(item_dim, hidden_dims[0], bias=False)
        layers: list[nn.Module] = [nn.ReLU()]
        for width_in, width_out in zip(hidden_dims[:-1], hidden_dims[1:]):
            layers += [nn.Linear(width_in, width_out), nn.ReLU()]
        layers.append(nn.Linear(hidden_dims[-1], 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, user: Tensor, item: Tensor) -> Tensor:
        return self.layers(self.user_input(user) + self.item_input(item)).squeeze(-1)

    def score_all(self, user: Tensor, items: Tensor) -> Tensor:
        user_part = self.user_input(user).unsqueeze(1)  # (B, 1, h)
        item_part = self.item_input(items)  # (N, h)
        parts = [
            self.layers(user_part + item_part[part]).squeeze(-1)  # (B, n)
            for part in item_chunks(len(items), user.shape[0] * item_part.shape[1])
        ]
        return torch.cat(parts, dim=1)


__all__ = [
    "EARLY_COMBINES",
    "FUSION_MODES",
    "AttentionFusion",
    "EarlyFusion",
    "Fusion",
    "HybridFusion",
    "LateFusion",
    "ModalityProjection",
    "PairMLP",
    "check_choice",
    "fusion_blocks",
    "make_fusion",
]
