"""The second world's calibration table: every parameter, its value (read from the config in use) and its source.

A status per parameter:

* ``published``: the value is a published figure;
* ``bounded``: published figures bound the value; the value itself is assumed inside those bounds and swept
  (``benchmarks/market_headroom.py --sweep``);
* ``assumed``: no published figure was found; swept when it touches a ceiling;
* ``design``: a choice of the simulator's structure or size (scale for CPU, episode length), not a market fact;
* ``not used``: a first-world parameter the second world's page model replaces.

:func:`calibration_table` raises when a config field has no entry here, so a new parameter cannot go unsourced.
The same rows are the table of docs/market.md ("Every parameter, its value and its source") and are written into
``benchmarks/results/market_headroom.json`` (``calibration``).
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass

DOUBLECLICK = ("DoubleClick/KRC Research 1996 (Ad Age, 'New ammo for click-rate debate'): banner CTR 3.6% on the "
               "first impression, ~2% on the next two, under 1% after: a raw factor of 0.56 on the 2nd exposure, "
               "~0.65 per exposure over the first four; raw, so it overstates the per-user decay (heavy users see more "
               "ads and click less: Chatterjee, Hoffman & Novak 2003, Marketing Science 22(4), find the repeated-"
               "exposure effect negative, nonlinear and levelling off once click proneness is modelled per user; "
               "Atlas Institute 2004, Chandler-Pepelnjak & Song, 'Optimal frequency', 38 advertisers: response "
               "highest on the first impression, falling by the 4th-6th). The value sits between no fatigue (1.0) "
               "and the raw 0.56-0.65; swept 0.6-1.0")
SCALE = "the first worlds' scale, sized for CPU (issue 6)"

SOURCES: dict[str, tuple[str, str]] = {
    # the first world's parameters (genads.market.world.WorldConfig)
    "world.n_users": ("design", SCALE),
    "world.n_ads": ("design", SCALE),
    "world.n_advertisers": ("design", SCALE),
    "world.n_organic": ("design", SCALE),
    "world.dim": ("design", "latent dimension of users and items (first worlds)"),
    "world.topics": ("assumed", "interest clusters (first worlds)"),
    "world.user_topics": ("assumed", "clusters mixed per user (first worlds)"),
    "world.topic_spread": ("assumed", "item spread around its topic (first worlds)"),
    "world.base_logit": ("assumed", "first worlds. For scale: Ali-CCP's Taobao feed impressions click 4.05% "
                                    "(84M impressions, 3.4M clicks; Ma et al. 2018, ESMM, SIGIR); here the full "
                                    "oracle's shown ads click ~10% and the previous system's logged ads 10.5%"),
    "world.affinity": ("assumed", "weight of the user-item match in the CTR logit (first worlds)"),
    "world.item_bias_std": ("assumed", "per-item CTR logit spread (first worlds)"),
    "world.feature_noise": ("assumed", "noise of the ads' content vectors the models see (first worlds)"),
    "world.page_size": ("design", "positions per page (first worlds)"),
    "world.ad_positions": ("design", "the ad slots, top first; a page with L ads uses the first L (first worlds)"),
    "world.position_decay": ("not used", "the second world's position effects come from position_eta"),
    "world.value_mean": ("design", "the currency unit: mean value per click 1.0"),
    "world.value_sigma": ("assumed", "log-normal spread of advertisers' values per click (first worlds)"),
    "world.conversions": ("design", "values per click drawn directly (conversions off)"),
    "world.budget_per_1000": ("assumed", "first worlds; sets how many advertisers run out (budget-bound market)"),
    "world.budget_sigma": ("assumed", "log-normal spread of budgets (first worlds)"),
    "world.roi_target_max": ("assumed", "targets of return on spend drawn from U[1, 1.3] (first worlds)"),
    "world.click_model": ("not used", "the second world's page choice is the multinomial logit"),
    "world.stop_after_click": ("not used", "cascade click model only"),
    "world.cannibalisation": ("not used", "substitution comes from the multinomial logit itself"),
    # the second world (genads.market.world2.World2Config)
    "world2.creatives.per_ad": ("published", "CreativeRanking (Wang et al. 2021, 'A hybrid bandit model with visual "
                                             "priors for creative ranking in display advertising', WWW): 1.7M "
                                             "creatives of 500k products = 3.4 per product"),
    "world2.creatives.quality_std": ("bounded", "within-ad logit spread of creatives for everyone. Lower bound: AutoCO "
                                                "(Chen et al. 2021, 'Automated creative optimization for e-commerce "
                                                "advertising', WWW) raised CTR 7% online over the production creative "
                                                "choice, so the best of 3 creatives must beat a random one by more: "
                                                "exp(0.85 sigma) - 1 >= 7% gives sigma >= 0.08; Wang et al. 2021 report "
                                                "'largely different CTRs' among one product's creatives without a "
                                                "spread. 0.25 (best of 3 over a random one: +24% CTR) assumed; swept 0-0.5"),
    "world2.creatives.match_std": ("bounded", "user-specific creative match. Lower bound: HLLM-Creator's "
                                              "personalised titles gained +0.476% ad revenue online over non-personalised "
                                              "ones (Douyin search ads, seeds/004), so the oracle's personal choice must "
                                              "gain more than that; 0.25 (oracle creative ceiling +1.8-3.3%, 4-7x the "
                                              "published learned gain) assumed; swept 0-0.5"),
    "world2.creatives.encoder": ("design", "the project's text encoder (all-MiniLM-L6-v2); the verdict's config uses "
                                           "the hashing encoder (see configs/market_world2_verdict.yaml)"),
    "world2.position_eta": ("published", "kappa[p] = (1/(1+p))^eta, the propensity form and default severity of "
                                         "Joachims, Swaminathan & Schnabel 2017 ('Unbiased learning-to-rank with "
                                         "biased feedback', WSDM); swept 0.5-1.5"),
    "world2.no_click_logit": ("assumed", "weight of the no-click option (its structure: RecSim NG's multinomial-"
                                         "logit choice); swept -1..1"),
    "world2.organic_value": ("assumed", "what the platform counts an organic click as worth (its own choice); "
                                       "swept 0-1"),
    "world2.fixed_load": ("design", "the first worlds' three ad slots (the ad load of a platform that does not "
                                    "choose it)"),
    "world2.fatigue_same_ad": ("bounded", DOUBLECLICK),
    "world2.ad_blindness": ("assumed", "direction from Hohnhold, O'Brien & Tang 2015 ('Focusing on the long-term', "
                                       "KDD: ad load and quality train users to ignore ads; Google cut mobile ad load "
                                       "by 50%), no per-ad figure; swept 0-0.05"),
    "world2.session_len": ("assumed", "page views per session (fatigue resets between sessions)"),
    "world2.reserve_levels": ("assumed", "per-slot reserves in the form of Ostrovsky & Schwarz 2011 ('Reserve prices "
                                         "in internet advertising auctions: a field experiment', EC), levels assumed"),
    "world2.learning.share": ("assumed", "share of advertisers that learn their bid (AuctionGym, Jeunen et al. 2022)"),
    "world2.learning.grid": ("assumed", "bid multipliers the learners try (AuctionGym's bandit bidders)"),
    "world2.learning.epsilon": ("assumed", "exploration rate of the learners (decaying epsilon-greedy)"),
    "world2.learning.decay": ("assumed", "rounds over which the learners' exploration halves"),
    # the headroom study (genads.market.headroom.HeadroomConfig)
    "headroom.seeds": ("design", "ten seeds, paired across oracles"),
    "headroom.sessions": ("design", "sessions served side by side per wave, sized for cost"),
    "headroom.waves": ("design", "waves per episode: 5 x 100 sessions x 8 page views = 4,000 requests per seed"),
    "headroom.pool": ("design", "the slate-aware oracle orders the best 8 ads by eCPM exhaustively"),
    "headroom.budget_passes": ("design", "pacing duals tuned in hindsight over 10 runs (the first: no duals)"),
    "headroom.budget_step": ("design", "step of the hindsight dual search"),
    "headroom.organic_noise": ("assumed", "Gumbel noise of the organic ranker (as the first worlds' engine)"),
    # the verdict's logs in this world (genads.market.logs.LogConfig)
    "logs.logging_temperature": ("assumed", "the previous system's Plackett-Luce temperature over its pCTR logit + "
                                            "log value"),
    "logs.logging_noise": ("assumed", "the previous system's pCTR logit error (standard deviation)"),
}


def _flatten(prefix: str, cfg) -> list[tuple[str, object]]:
    out = []
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if is_dataclass(v):
            out += _flatten(f"{prefix}.{f.name}", v)
        else:
            out.append((f"{prefix}.{f.name}", list(v) if isinstance(v, tuple) else v))
    return out


def calibration_table(world=None, world2=None, headroom=None, logs=None) -> list[dict]:
    """Rows ``{parameter, value, status, source}`` for every field of the given configs (``logs``: only its two
    logging-policy fields, the ones the second world's verdict sets). Raises if a field has no source."""
    rows = []
    parts = [("world", world), ("world2", world2), ("headroom", headroom)]
    for prefix, cfg in parts:
        if cfg is not None:
            rows += _flatten(prefix, cfg)
    if logs is not None:
        rows += [(f"logs.{n}", getattr(logs, n)) for n in ("logging_temperature", "logging_noise")]
    missing = [name for name, _ in rows if name not in SOURCES]
    if missing:
        raise KeyError(f"no source for {missing}: add each to genads.market.calibration.SOURCES")
    return [{"parameter": name, "value": value, "status": SOURCES[name][0], "source": SOURCES[name][1]}
            for name, value in rows]


def markdown(rows: list[dict]) -> str:
    """The rows as docs/market.md's table."""
    lines = ["| parameter | value | status | source |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['parameter']}` | {r['value']} | {r['status']} | {r['source']} |")
    return "\n".join(lines)
