"""Decoding: trie-constrained beam search over Semantic IDs (beam.py), token-level bidding (bidding.py)."""
