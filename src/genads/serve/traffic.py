"""Who may ask for ads and report events, how often, and which clicks are invalid traffic.

The money rules (a slot charged once, prices never above bids) make every single event honest in
form; this module handles traffic that is valid in form and fraudulent in intent: a script asking
for slates and clicking every slot of a rival. Four defences, each a knob of :class:`TrafficPolicy`:

* **Keys.** ``/v1/ads`` and ``/v1/events`` need a publisher key (or the admin key) unless the
  service runs in open mode (``require_keys=False``, ``genads serve --open-traffic``).
* **Rate limits.** A token bucket per client (the connection's peer address: the IP-equivalent) and
  per key, for ad requests and for events separately; over it, 429 with ``Retry-After``.
* **Frequency caps.** A user (the request's ``user_id``) is shown the same ad at most
  ``freq_cap_ad`` times and the same campaign at most ``freq_cap_campaign`` times per
  ``freq_window_s``, counted when slots are served; capped ads are left out of the next slates.
* **Invalid clicks.** A click sooner than ``min_click_delay_s`` after its slot's impression is
  recorded as invalid and charged nothing (the ledger judges it, from the impression's stored time).
  A client (or user) clicking more than ``max_clicks_per_client`` (``max_clicks_per_user``) times
  within ``click_window_s`` is a click farm: that click and every later one in the window are
  invalid, and the clicks of the window already charged are refunded
  (:meth:`genads.serve.refunds.RefundStore.refund`). Conversions of slots without a valid click
  are recorded as invalid (the ledger's rule).

Counters live in the server process (with ``--workers N`` each worker counts its own share, so the
caps per client are up to N times looser; the fast-click rule is in the ledger and holds across
workers). Time comes from an injectable ``clock`` so tests can drive a ten-second attack without
waiting ten seconds.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

SWEEP_EVERY = 10_000
"""Operations between sweeps of idle counters (memory stays bounded by the active clients and users)."""


@dataclass(frozen=True)
class TrafficPolicy:
    require_keys: bool = True
    """``/v1/ads`` and ``/v1/events`` need a publisher key or the admin key (False: open mode)."""
    limits: bool = True
    """Rate limits, frequency caps and invalid-click rules (False turns all of them off)."""
    ads_per_s: float = 50.0
    """Ad requests per second per client (token bucket refill)."""
    ads_burst: int = 100
    events_per_s: float = 100.0
    """Events per second per client."""
    events_burst: int = 200
    key_per_s: float = 1000.0
    """Ad requests (and, separately, events) per second per publisher key."""
    key_burst: int = 2000
    freq_cap_ad: int = 3
    """Slots of one ad served to one user per ``freq_window_s``."""
    freq_cap_campaign: int = 10
    """Slots of one campaign served to one user per ``freq_window_s``."""
    freq_window_s: float = 3600.0
    min_click_delay_s: float = 0.5
    """A click sooner than this after its slot's impression is invalid (charged nothing)."""
    max_clicks_per_user: int = 5
    """Clicks of one user per ``click_window_s``; more: invalid, and the window's charged clicks refunded."""
    max_clicks_per_client: int = 10
    """Clicks of one client per ``click_window_s``; more: invalid, and the window's charged clicks refunded."""
    click_window_s: float = 600.0

    def __post_init__(self) -> None:
        for name in ("ads_per_s", "events_per_s", "key_per_s", "freq_window_s", "click_window_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")
        for name in ("ads_burst", "events_burst", "key_burst", "freq_cap_ad", "freq_cap_campaign",
                     "max_clicks_per_user", "max_clicks_per_client"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.min_click_delay_s < 0:
            raise ValueError(f"min_click_delay_s={self.min_click_delay_s} must be >= 0")


OPEN = TrafficPolicy(require_keys=False, limits=False)
"""No keys, no limits: the service as it was before publisher keys (benchmarks' baseline, trusted networks)."""


class RateLimiter:
    """Token buckets by key: ``rate`` tokens a second up to ``burst``; each allowed call takes one."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self._buckets: dict[object, list[float]] = {}
        self._lock = threading.Lock()
        self._ops = 0

    def take(self, key: object, now: float) -> float:
        """0.0 if a token was taken; else the seconds until one will be there (nothing taken)."""
        with self._lock:
            self._ops += 1
            if self._ops % SWEEP_EVERY == 0:
                self._sweep(now)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = [self.burst, now]
            tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
            if tokens >= 1.0:
                bucket[0] = tokens - 1.0
                return 0.0
            bucket[0] = tokens
            return (1.0 - tokens) / self.rate

    def _sweep(self, now: float) -> None:
        full = self.burst / self.rate
        for key in [k for k, (_, last) in self._buckets.items() if now - last >= full]:
            del self._buckets[key]  # refilled by now: the same as a new bucket


class Windows:
    """Recent entries by key within ``span`` seconds (a deque per key; idle keys are swept)."""

    def __init__(self, span: float) -> None:
        self.span = span
        self._entries: dict[object, deque] = {}
        self._ops = 0

    def get(self, key: object, now: float) -> deque:
        """The key's entries (``entry[0]`` is its time), those older than the span dropped."""
        self._ops += 1
        if self._ops % SWEEP_EVERY == 0:
            for k in [k for k, q in self._entries.items() if not q or now - q[-1][0] > self.span]:
                del self._entries[k]
        q = self._entries.setdefault(key, deque())
        while q and now - q[0][0] > self.span:
            q.popleft()
        return q


class _Seen:
    """One user's served slots within the window, and their counts per ad and per campaign."""

    __slots__ = ("ads", "campaigns", "full", "slots")

    def __init__(self) -> None:
        self.slots: deque = deque()
        self.ads: dict[int, int] = {}
        self.campaigns: dict[int, int] = {}
        self.full: set[int] = set()
        """Ads at their cap."""


class ServedCounts:
    """What each user was served in the last ``span`` seconds, counted as slots come and go: reading the caps costs
    what the user has at its cap and the campaigns it saw, not a walk over every slot of its window (hundreds for
    a heavy user, on the decoder's thread for every request). Idle users are swept like :class:`Windows`."""

    def __init__(self, span: float, ad_cap: int) -> None:
        self.span, self.ad_cap = span, ad_cap
        self._users: dict[str, _Seen] = {}
        self._ops = 0

    def _seen(self, user: str, now: float) -> _Seen:
        self._ops += 1
        if self._ops % SWEEP_EVERY == 0:
            for u in [u for u, x in self._users.items() if not x.slots or now - x.slots[-1][0] > self.span]:
                del self._users[u]
        seen = self._users.get(user)
        if seen is None:
            seen = self._users[user] = _Seen()
        q, ads, campaigns = seen.slots, seen.ads, seen.campaigns
        while q and now - q[0][0] > self.span:
            _, ad, campaign = q.popleft()
            n = ads[ad] - 1
            if n:
                ads[ad] = n
            else:
                del ads[ad]
            if n < self.ad_cap:
                seen.full.discard(ad)
            m = campaigns[campaign] - 1
            if m:
                campaigns[campaign] = m
            else:
                del campaigns[campaign]
        return seen

    def add(self, user: str, now: float, slots: Iterable[tuple[int, int]]) -> None:
        seen = self._seen(user, now)
        for ad, campaign in slots:
            seen.slots.append((now, ad, campaign))
            n = seen.ads[ad] = seen.ads.get(ad, 0) + 1
            if n >= self.ad_cap:
                seen.full.add(ad)
            seen.campaigns[campaign] = seen.campaigns.get(campaign, 0) + 1

    def counts(self, user: str, now: float) -> tuple[set[int], dict[int, int]]:
        """(ads at their cap, campaign_id -> slots served) within the window."""
        seen = self._seen(user, now)
        return set(seen.full), dict(seen.campaigns)


@dataclass(frozen=True)
class Caller:
    """Who sent an ad request or event: the client (peer address) and the key (None in open mode)."""

    client: str
    key_id: str | None = None
    publisher: str | None = None


class TrafficGuard:
    """The policy's counters: rate limits, frequency caps, click caps (thread-safe; one per app)."""

    def __init__(self, policy: TrafficPolicy, clock: Callable[[], float]) -> None:
        self.policy, self.clock = policy, clock
        p = policy
        self._rates = {"ads": (RateLimiter(p.ads_per_s, p.ads_burst), RateLimiter(p.key_per_s, p.key_burst)),
                       "events": (RateLimiter(p.events_per_s, p.events_burst), RateLimiter(p.key_per_s, p.key_burst))}
        self._served = ServedCounts(p.freq_window_s, p.freq_cap_ad)
        self._clicks = Windows(p.click_window_s)
        self._lock = threading.Lock()

    def rate(self, kind: str, caller: Caller) -> tuple[str, float] | None:
        """None if ``caller`` may send one more ``kind`` ("ads" or "events") request now; else (what is over
        its limit: "client" or "key", seconds to wait)."""
        if not self.policy.limits:
            return None
        now = self.clock()
        per_client, per_key = self._rates[kind]
        wait = per_client.take(caller.client, now)
        if wait:
            return "client", wait
        if caller.key_id is not None:
            wait = per_key.take(caller.key_id, now)
            if wait:
                return "key", wait
        return None

    def capped(self, user: str | None) -> tuple[set[int], dict[int, int]]:
        """The user's frequency caps now: (ad ids at their cap, campaign_id -> slots it may still be shown), for
        the campaigns it has seen; empty without a user or limits."""
        if user is None or not self.policy.limits:
            return set(), {}
        with self._lock:
            full, campaigns = self._served.counts(user, self.clock())
        cap = self.policy.freq_cap_campaign
        return full, {c: max(cap - n, 0) for c, n in campaigns.items()}

    def served(self, user: str | None, slots: Iterable[tuple[int, int]]) -> None:
        """Count the (ad_id, campaign_id) slots just served to the user against its caps."""
        if user is None or not self.policy.limits:
            return
        with self._lock:
            self._served.add(user, self.clock(), slots)

    def judge_click(self, caller: Caller, user: str) -> str | None:
        """Why a click about to be recorded is invalid (over the client's or the user's click cap), or None."""
        if not self.policy.limits:
            return None
        p, now = self.policy, self.clock()
        with self._lock:
            if len(self._clicks.get(("client", caller.client), now)) >= p.max_clicks_per_client:
                return "client_clicks"
            if user and len(self._clicks.get(("user", user), now)) >= p.max_clicks_per_user:
                return "user_clicks"
        return None

    def clicked(self, caller: Caller, user: str, slot: tuple[str, str], charged: int,
                invalid: str | None) -> list[tuple[tuple[str, str], str]]:
        """Count a recorded click ((request_id, idempotency_key), micros charged, why it was invalid); the
        charged clicks to refund now, with the reason: those of the window whose cap this click crossed."""
        if not self.policy.limits:
            return []
        now, out = self.clock(), []
        with self._lock:
            for scope, who in (("client", caller.client), ("user", user)):
                if scope == "user" and not user:
                    continue
                q = self._clicks.get((scope, who), now)
                q.append([now, slot, charged])
                if invalid == f"{scope}_clicks":
                    for entry in q:  # the whole window is the farm's: give back what it was charged
                        if entry[2] > 0:
                            out.append((entry[1], invalid))
                            entry[2] = 0
        return out
