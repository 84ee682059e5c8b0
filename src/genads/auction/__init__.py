"""Auctions: pure mechanisms, learned payments, RegretNet and regret estimators."""
