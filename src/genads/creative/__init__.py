"""Personalised creatives: history sampling, selling-point-constrained titles, banners, creative metrics."""
