"""Frequency caps counted as slots come and go (issue 29): ``TrafficGuard.capped`` gives what a walk over the
user's whole window gives, whatever the order of serving, reading and expiry."""

from __future__ import annotations

import random

from genads.serve.traffic import ServedCounts, TrafficGuard, TrafficPolicy


def _walk(log: list[tuple[float, str, int, int]], user: str, now: float, span: float, ad_cap: int,
          campaign_cap: int) -> tuple[set[int], dict[int, int]]:
    """The caps as the guard computed them before: every slot of the window, counted at each read."""
    ads: dict[int, int] = {}
    campaigns: dict[int, int] = {}
    for t, u, ad, campaign in log:
        if u == user and now - t <= span:
            ads[ad] = ads.get(ad, 0) + 1
            campaigns[campaign] = campaigns.get(campaign, 0) + 1
    return {a for a, n in ads.items() if n >= ad_cap}, {c: max(campaign_cap - n, 0) for c, n in campaigns.items()}


def test_incremental_caps_equal_a_walk_over_the_window():
    rng = random.Random(0)
    now = [0.0]
    policy = TrafficPolicy(freq_cap_ad=3, freq_cap_campaign=5, freq_window_s=50.0)
    guard = TrafficGuard(policy, lambda: now[0])
    log: list[tuple[float, str, int, int]] = []
    users = [f"{i:016x}" for i in range(3)]
    checked = 0
    for _ in range(3000):
        now[0] += rng.choice([0.0, 0.1, 0.5, 1.0, 2.0, 80.0])
        user = rng.choice(users)
        if rng.random() < 0.5:
            slots = [(ad, ad // 3) for ad in rng.sample(range(8), rng.randint(1, 4))]
            guard.served(user, slots)
            log += [(now[0], user, ad, c) for ad, c in slots]
        else:
            got = guard.capped(user)
            assert got == _walk(log, user, now[0], 50.0, 3, 5)
            checked += bool(got[0])
    assert checked > 30  # the caps were reached often enough for the comparison to mean something


def test_idle_users_are_swept():
    counts = ServedCounts(span=10.0, ad_cap=2)
    counts.add("a", 0.0, [(1, 1), (1, 1)])
    assert counts.counts("a", 5.0) == ({1}, {1: 2})
    assert counts.counts("a", 10.5) == (set(), {})  # expired: the counts go back down
    import genads.serve.traffic as traffic

    for i in range(traffic.SWEEP_EVERY):
        counts.add(f"u{i % 7}", 100.0 + i * 1e-6, [(2, 1)])
    assert "a" not in counts._users  # long idle: gone at the next sweep
