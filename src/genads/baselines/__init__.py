"""Baselines in the evaluation harness: popularity and SASRec."""

from genads.baselines.popularity import Popularity
from genads.baselines.sasrec import SASRec, SASRecConfig

BASELINES = {"popularity": Popularity, "sasrec": SASRec}

__all__ = ["BASELINES", "Popularity", "SASRec", "SASRecConfig"]
