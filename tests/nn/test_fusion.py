"""Fusion building blocks: shapes, the factorised form against direct sums, attention weights, chunking."""

from __future__ import annotations

import pytest
import torch

import modalrec.nn.fusion as fusion_module
from modalrec.errors import ConfigError
from modalrec.nn.fusion import (
    FUSION_MODES,
    AttentionFusion,
    EarlyFusion,
    HybridFusion,
    LateFusion,
    ModalityProjection,
    PairMLP,
    fusion_blocks,
    make_fusion,
)

B, N, S, D = 5, 7, 3, 4  # users, items, sources (id + 2 modalities), width


def random_inputs(num_blocks: int, query_dim: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(B, num_blocks, D), torch.randn(B, query_dim), torch.randn(N, S, D)


def test_modality_projection_brings_tables_to_one_width() -> None:
    tables = [torch.randn(N, 10), torch.randn(N, 3)]
    assert ModalityProjection([10, 3], D)(tables).shape == (N, 2, D)
    assert ModalityProjection([10, 3], D, hidden_dim=8)(tables).shape == (N, 2, D)


@pytest.mark.parametrize("mode", FUSION_MODES)
def test_shapes_and_factorised_scores(mode: str) -> None:
    fusion = make_fusion(mode, num_sources=S, dim=D, query_dim=6, combine="concat")
    assert fusion.num_blocks == fusion_blocks(mode, S)
    user_blocks, query, sources = random_inputs(fusion.num_blocks)
    assert fusion.item_blocks(sources).shape == (N, fusion.num_blocks, D)
    user, item = fusion.user_vectors(user_blocks, query), fusion.item_vectors(sources)
    assert user.shape == (B, fusion.num_blocks * D) and item.shape == (N, fusion.num_blocks * D)
    scores = fusion.score_all(user_blocks, query, sources)
    assert scores.shape == (B, N)
    assert torch.allclose(scores, user @ item.T, atol=1e-5)
    matched = fusion.score_pairs(user_blocks, query, sources[:B])
    assert torch.allclose(matched, scores[torch.arange(B), torch.arange(B)], atol=1e-5)


def test_early_sum_is_the_sum_of_sources() -> None:
    _, _, sources = random_inputs(1)
    assert torch.allclose(EarlyFusion(S, D, "sum").fuse(sources), sources[:, 0] + sources[:, 1] + sources[:, 2])
    assert EarlyFusion(S, D, "concat").fuse(sources).shape == (N, D)


def test_late_fusion_is_a_weighted_sum_of_per_source_scores() -> None:
    fusion = LateFusion(S, weights=[1.0, 2.0, 1.0])
    user_blocks, query, sources = random_inputs(S)
    assert torch.allclose(fusion.weights(), torch.tensor([0.25, 0.5, 0.25]))
    direct = sum(
        S * w * (user_blocks[:, s] @ sources[:, s].T) for s, w in enumerate([0.25, 0.5, 0.25])
    )  # equal weights would give the plain sum of the three per-source scores
    assert torch.allclose(fusion.score_all(user_blocks, query, sources), direct, atol=1e-5)
    assert list(fusion.parameters()) == []  # fixed weights are not learned
    assert len(list(LateFusion(S).parameters())) == 1


def test_late_fusion_rejects_bad_fixed_weights() -> None:
    with pytest.raises(ConfigError, match="3 non-negative weights"):
        LateFusion(S, weights=[1.0, 1.0])


def test_hybrid_scores_the_early_block_with_weight_one() -> None:
    fusion = HybridFusion(S, D, "sum")
    user_blocks, query, sources = random_inputs(1 + S)
    weights = fusion.block_weights(query)
    assert torch.allclose(weights[:, 0], torch.ones(B))
    early = user_blocks[:, 0] @ sources.sum(1).T
    late = sum(weights[:, 1 + s, None] * (user_blocks[:, 1 + s] @ sources[:, s].T) for s in range(S))
    assert torch.allclose(fusion.score_all(user_blocks, query, sources), early + late, atol=1e-5)


@pytest.mark.parametrize("condition_on_item", [False, True])
def test_attention_weights_sum_to_one_and_differ_between_users(condition_on_item: bool) -> None:
    fusion = AttentionFusion(S, query_dim=6, source_dim=D, attention_dim=8, condition_on_item=condition_on_item)
    _, query, sources = random_inputs(S)
    weights = fusion.source_weights(query, sources)
    assert weights.shape == (B, N, S)
    assert torch.allclose(weights.sum(-1), torch.ones(B, N))
    assert (weights >= 0).all()
    assert not torch.allclose(weights[0], weights[1], atol=1e-3)
    differs_by_item = not torch.allclose(weights[:, 0], weights[:, 1], atol=1e-3)
    assert differs_by_item == condition_on_item


@pytest.mark.parametrize("bounded", [True, False])
def test_bounded_attention_keeps_every_source_within_one_logit_of_the_shared_prior(bounded: bool) -> None:
    fusion = AttentionFusion(S, query_dim=6, source_dim=D, attention_dim=8, bounded=bounded)
    with torch.no_grad():
        fusion.source_outputs.mul_(100.0)  # a user term that would saturate the softmax
        fusion.source_logits.copy_(torch.tensor([1.0, 0.0, 0.0]))
    _, query, sources = random_inputs(S)
    logits = fusion.source_weights(query, sources)[:, 0].log()  # (B, S), up to a constant per user
    deviation = logits - logits.mean(1, keepdim=True) - (fusion.source_logits - fusion.source_logits.mean())
    assert (deviation.abs().max() <= 2.0) == bounded  # tanh moves each logit by at most 1


@pytest.mark.parametrize("shared_logits", [True, False])
def test_shared_logits_are_learned_only_when_asked(shared_logits: bool) -> None:
    fusion = AttentionFusion(S, query_dim=6, source_dim=D, attention_dim=8, shared_logits=shared_logits)
    user_blocks, query, sources = random_inputs(S)
    optimiser = torch.optim.Adam(fusion.parameters(), lr=0.1)
    for _ in range(3):
        optimiser.zero_grad()
        fusion.score_pairs(user_blocks, query, sources[:B]).sum().backward()
        optimiser.step()
    assert bool((fusion.source_logits != 0).any()) == shared_logits
    assert not torch.allclose(fusion.source_weights(query, sources)[0], fusion.source_weights(query, sources)[1])


def test_user_attention_factors_into_weighted_user_blocks() -> None:
    fusion = AttentionFusion(S, query_dim=6, source_dim=D)
    user_blocks, query, sources = random_inputs(S)
    weights = fusion.source_weights(query, sources)[:, 0]  # (B, S), the same for every item
    direct = sum(S * weights[:, s, None] * (user_blocks[:, s] @ sources[:, s].T) for s in range(S))
    assert torch.allclose(fusion.score_all(user_blocks, query, sources), direct, atol=1e-5)


def test_item_conditioned_attention_matches_a_loop_over_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fusion_module, "CHUNK_ELEMENTS", 2 * B * S * 8)  # two items per chunk
    fusion = AttentionFusion(S, query_dim=6, source_dim=D, attention_dim=8, condition_on_item=True)
    assert not fusion.factorizes
    user_blocks, query, sources = random_inputs(S)
    scores = fusion.score_all(user_blocks, query, sources)
    weights = fusion.source_weights(query, sources)
    for b in range(B):
        for n in range(N):
            pair = fusion.score_pairs(user_blocks[b : b + 1], query[b : b + 1], sources[n : n + 1])
            direct = S * sum(weights[b, n, s] * user_blocks[b, s] @ sources[n, s] for s in range(S))
            assert torch.allclose(scores[b, n], pair[0], atol=1e-5)
            assert torch.allclose(scores[b, n], direct, atol=1e-5)


def test_early_fusion_has_no_modality_weights() -> None:
    _, query, sources = random_inputs(1)
    assert EarlyFusion(S, D).source_weights(query, sources) is None


def test_unknown_mode_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="expected one of early, late, hybrid, attention; got 'middle'"):
        make_fusion("middle", num_sources=S, dim=D, query_dim=6)
    with pytest.raises(ConfigError, match="sum, concat"):
        EarlyFusion(S, D, combine="product")


def test_pair_mlp_all_pairs_equals_the_concatenated_mlp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fusion_module, "CHUNK_ELEMENTS", 3 * B * 8)  # three items per chunk
    torch.manual_seed(0)
    mlp = PairMLP(user_dim=6, item_dim=5, hidden_dims=(8, 4))
    users, items = torch.randn(B, 6), torch.randn(N, 5)
    first = torch.nn.Linear(11, 8)  # the unsplit first layer W [x_u; x_i] + b
    first.weight.data = torch.cat([mlp.user_input.weight, mlp.item_input.weight], dim=1)
    first.bias.data = mlp.user_input.bias.data
    pairs = torch.cat([users[:, None].expand(-1, N, -1), items[None].expand(B, -1, -1)], dim=2)  # (B, N, 11)
    direct = mlp.layers(first(pairs)).squeeze(-1)
    assert torch.allclose(mlp.score_all(users, items), direct, atol=1e-5)
    assert torch.allclose(mlp(users, items[:B]), direct[torch.arange(B), torch.arange(B)], atol=1e-5)
