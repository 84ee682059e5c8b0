"""The parallel-code generator family: long flat codes per ad, one position per item, exact scoring.

Beside the SID family (``genads.slate``: short hierarchical Semantic IDs, trie-constrained beam search),
which serves catalogues where scoring every ad is too slow, this family scores every live ad exactly
(``genads.parallel.scoring``), so no valid ad is missed and new ads are scorable at once.
"""

from genads.parallel.model import ParallelConfig, ParallelModel, score_items
from genads.parallel.recommender import PRESETS, ParallelRecommender
from genads.parallel.scoring import LiveAds
from genads.parallel.train import ParallelTrainConfig, fit
from genads.tokenize.pq import PQCodebook, PQConfig

__all__ = ["PRESETS", "LiveAds", "PQCodebook", "PQConfig", "ParallelConfig", "ParallelModel", "ParallelRecommender",
           "ParallelTrainConfig", "fit", "score_items"]
