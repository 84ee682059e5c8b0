"""Semantic IDs: tokenizers (RQ-KMeans, RQ-VAE, end-to-end after UniSID), collisions, live-ad trie, metrics."""

from __future__ import annotations

from genads.tokenize.base import Tokenizer, load_tokenizer, save_tokenizer
from genads.tokenize.collisions import disambiguate
from genads.tokenize.rq_kmeans import RQKMeansConfig, RQKMeansTokenizer

TOKENIZERS: dict[str, type] = {
    "rq-kmeans": RQKMeansTokenizer,
}
"""Method name (``genads tokenize --method``) -> tokenizer class (each has ``from_state``)."""

__all__ = [
    "TOKENIZERS",
    "RQKMeansConfig",
    "RQKMeansTokenizer",
    "Tokenizer",
    "disambiguate",
    "load_tokenizer",
    "save_tokenizer",
]
