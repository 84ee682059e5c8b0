"""The ad-market simulator: ground-truth users, ads and advertisers; the cascade against genads end to end.

``world`` (latent users/ads, click model, advertisers) -> ``logs`` (what the models train on) ->
``cascade`` / ``e2e`` (the two pipelines) -> ``engine`` (an episode: bidders, auctions, budgets,
clicks) -> ``audit`` (regret, Ψ) -> ``compare`` (seeds, ablations, confidence intervals).
"""
