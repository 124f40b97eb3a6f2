"""What a model can do beyond the contract's ``loss`` and ``score``, declared once when it is registered.

serve/, explain, tune and the trainer read these flags (through :func:`modalrec.models.registry.capabilities_of`)
instead of probing the model with ``hasattr`` or by catching errors. ``tests/models/test_model_contract.py``
checks every registered model's declaration against its behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capabilities:
    dot_product: bool = False  # score == embeddings().users @ embeddings().items.T
    cold_items: bool = False  # scores catalogue items without interactions from their content
    new_items: bool = False  # embeds brand-new items from raw content features (content_item_vectors)
    modality_weights: bool = False  # exposes per-user modality weights (for explain)
    closed_form: bool = False  # fitted in closed form, no epochs
    search_space: bool = False  # declares a tunable search space (tune)


__all__ = ["Capabilities"]
