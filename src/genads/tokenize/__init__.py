"""Semantic IDs: tokenizers (RQ-KMeans, RQ-VAE, end-to-end after UniSID), collisions, live-ad trie, metrics."""

from __future__ import annotations

from genads.tokenize.base import Tokenizer, load_tokenizer, save_tokenizer
from genads.tokenize.collisions import disambiguate
from genads.tokenize.rq_kmeans import RQKMeansConfig, RQKMeansTokenizer
from genads.tokenize.rq_vae import RQVAEConfig, RQVAETokenizer
from genads.tokenize.unisid import ItemFeatures, UniSIDConfig, UniSIDTokenizer

TOKENIZERS: dict[str, type] = {
    "rq-kmeans": RQKMeansTokenizer,
    "rq-vae": RQVAETokenizer,
    "e2e": UniSIDTokenizer,
}
"""Method name (``genads tokenize --method``) -> tokenizer class (each has ``from_state``)."""

__all__ = [
    "TOKENIZERS",
    "ItemFeatures",
    "RQKMeansConfig",
    "RQKMeansTokenizer",
    "RQVAEConfig",
    "RQVAETokenizer",
    "Tokenizer",
    "UniSIDConfig",
    "UniSIDTokenizer",
    "disambiguate",
    "load_tokenizer",
    "save_tokenizer",
]
