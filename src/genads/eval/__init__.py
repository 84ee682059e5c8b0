"""Evaluation: full-ranking metrics, the model harness and HTML reports."""
