"""Slate rewards: a permutation-aware reward model (EGA), simulated impressions, reward re-ranking.

* :mod:`genads.reward.model` — self-attention over a slate's ads (SID + position + bid) -> pCTR/pCVR.
* :mod:`genads.reward.simulate` — position-based click model and simulated impression logs for data
  sets without impressions.
* :mod:`genads.reward.features` — generator scores: the slate model's log P(SID | history) of given ads.
* :mod:`genads.reward.train` — fitting the model to a log; held-out log-loss / AUC.
* :mod:`genads.reward.pipeline` — simulated training logs and the decoder comparison used by the
  CLI, the demo step and benchmarks/beauty_bid_aware.py.
* :mod:`genads.reward.rerank` — choose and order a slate from the decoder's candidate pool.
"""

from genads.reward.model import RewardConfig, SlateRewardModel, load_reward_model, save_reward_model
from genads.reward.rerank import RerankConfig, Reranked, rerank, score_slates
from genads.reward.simulate import ClickModel, ImpressionLog, popularity_pools, simulate_log
from genads.reward.train import RewardTrainConfig, fit

__all__ = ["ClickModel", "ImpressionLog", "RerankConfig", "Reranked", "RewardConfig", "RewardTrainConfig",
           "SlateRewardModel", "fit", "load_reward_model", "popularity_pools", "rerank", "save_reward_model",
           "score_slates", "simulate_log"]
