"""Decoding: trie-constrained beam search over Semantic IDs."""
