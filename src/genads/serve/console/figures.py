"""The console's numbers: campaign rows, the operator's health figures from the service's own metrics, SVG charts.

Operator figures read the app's Prometheus registry (the same counters and histograms ``/metrics``
reports): request counts and p50/p99 per route (quantiles interpolated inside histogram buckets the
way Prometheus' ``histogram_quantile`` does), the fill rate of ``POST /v1/ads`` (slots filled over
slots asked for), money charged, and a requests-per-second rate between two readings. Charts are
inline SVG built here with every text escaped: no script, no external file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from genads.serve.keys import KeyInfo
from genads.serve.ledger import MICROS, Campaign


@dataclass(frozen=True)
class CampaignRow:
    campaign: Campaign
    impressions: int
    clicks: int
    conversions: int

    @property
    def ctr(self) -> float | None:
        return self.clicks / self.impressions if self.impressions else None

    @property
    def price_per_click(self) -> float | None:
        """Spend over clicks (a click on a paused campaign is counted and charged nothing)."""
        return self.campaign.spent_micros / MICROS / self.clicks if self.clicks else None


def campaign_rows(campaigns: list[Campaign], counts: dict[int, dict[str, tuple[int, int]]]) -> list[CampaignRow]:
    def n(cid: int, kind: str) -> int:
        return counts.get(cid, {}).get(kind, (0, 0))[0]

    return [CampaignRow(c, n(c.campaign_id, "impression"), n(c.campaign_id, "click"), n(c.campaign_id, "conversion"))
            for c in campaigns]


def advertiser_rows(campaigns: list[Campaign], advertiser_of: dict[int, int], keys: list[KeyInfo]) -> list[dict]:
    """Per advertiser (of an ad or a campaign): ads, campaigns, serving campaigns, budget and spent (micros),
    live keys; the biggest spender first."""
    rows: dict[int, dict] = {}

    def row(adv: int) -> dict:
        return rows.setdefault(adv, {"advertiser_id": adv, "ads": 0, "campaigns": 0, "active": 0, "budget": 0,
                                     "spent": 0, "keys": 0})

    for adv in advertiser_of.values():
        row(adv)["ads"] += 1
    for c in campaigns:
        r = row(c.advertiser_id)
        r["campaigns"], r["active"] = r["campaigns"] + 1, r["active"] + c.serving
        r["budget"], r["spent"] = r["budget"] + c.budget_micros, r["spent"] + c.spent_micros
    for k in keys:
        if k.advertiser_id is not None and k.revoked_at is None:
            row(k.advertiser_id)["keys"] += 1
    return sorted(rows.values(), key=lambda r: (-r["spent"], r["advertiser_id"]))


# --- operator figures from the metrics registry ------------------------------------------------
def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile of a Prometheus histogram given as (upper bound, cumulative count), ascending, +Inf last.

    Linear inside the bucket that holds it (the first bucket starts at 0); in the +Inf bucket, the
    highest finite bound. None for an empty histogram.
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank, lower, below = q * buckets[-1][1], 0.0, 0.0
    for bound, count in buckets:
        if count >= rank and count > below:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


@dataclass(frozen=True)
class RouteFigures:
    route: str
    requests: int
    errors: int
    """Answers with status >= 500."""
    p50: float | None
    p99: float | None


def _samples(registry) -> list:
    return [s for family in registry.collect() for s in family.samples]


def route_figures(registry) -> list[RouteFigures]:
    """Per route: requests, 5xx answers, p50 and p99 latency in seconds, busiest route first."""
    samples = _samples(registry)
    counts: dict[str, list[int]] = {}
    for s in samples:
        if s.name == "genads_http_requests_total":
            c = counts.setdefault(s.labels["route"], [0, 0])
            c[0] += int(s.value)
            c[1] += int(s.value) if s.labels["status"].startswith("5") else 0
    buckets: dict[str, list[tuple[float, float]]] = {}
    for s in samples:
        if s.name == "genads_http_request_duration_seconds_bucket":
            buckets.setdefault(s.labels["route"], []).append((float(s.labels["le"]), s.value))
    out = [RouteFigures(r, n, e, histogram_quantile(0.5, sorted(buckets.get(r, []))),
                        histogram_quantile(0.99, sorted(buckets.get(r, [])))) for r, (n, e) in counts.items()]
    return sorted(out, key=lambda f: (-f.requests, f.route))


def counter_total(registry, name: str, **labels: str) -> float:
    """Sum of a counter's samples (``name`` with ``_total``) whose labels include ``labels``."""
    return sum(s.value for s in _samples(registry)
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def fill_rate(registry) -> float | None:
    asked = counter_total(registry, "genads_slots_total", outcome="requested")
    return counter_total(registry, "genads_slots_total", outcome="filled") / asked if asked else None


class RateMeter:
    """Requests per second between the reading before last and now (at least ``min_s`` apart); since start
    before there are two readings."""

    def __init__(self, started: float, min_s: float = 1.0) -> None:
        self.readings: list[tuple[float, float]] = [(started, 0.0)]
        self.min_s = min_s

    def rate(self, now: float, total: float) -> tuple[float, float]:
        """(requests per second, over how many seconds)."""
        base = next((r for r in reversed(self.readings) if now - r[0] >= self.min_s), self.readings[0])
        if now - self.readings[-1][0] >= self.min_s:
            self.readings = [*self.readings[-5:], (now, total)]
        span = max(now - base[0], 1e-9)
        return (total - base[1]) / span, span


# --- charts ------------------------------------------------------------------------------------
def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}" if abs(v) >= 1 else f"{v:.3g}"


def bar_chart(values: list[float], labels: list[str], title: str, unit: str = "",
              width: int = 640, height: int = 180) -> Markup:
    """An SVG bar chart: one bar per value, the first and last labels under the axis, the maximum on it."""
    left, bottom, top = 56, 24, 22
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max(values, default=0.0) or 1.0
    step = plot_w / max(len(values), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>',
             f'<text x="{left}" y="14" font-size="12" fill="#333">{escape(title)}</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}" stroke="#999"/>',
             f'<text x="{left - 4}" y="{top + 10}" font-size="11" text-anchor="end" fill="#555">'
             f'{escape(_fmt(peak) + unit)}</text>',
             f'<text x="{left - 4}" y="{top + plot_h}" font-size="11" text-anchor="end" fill="#555">0</text>']
    for i, v in enumerate(values):
        h = plot_h * v / peak
        parts.append(f'<rect x="{left + i * step + 1:.1f}" y="{top + plot_h - h:.1f}" width="{max(step - 2, 1):.1f}" '
                     f'height="{h:.1f}" fill="#3b6fb6"><title>{escape(labels[i])}: {escape(_fmt(v) + unit)}</title></rect>')
    if labels:
        parts.append(f'<text x="{left}" y="{height - 6}" font-size="11" fill="#555">{escape(labels[0])}</text>')
        parts.append(f'<text x="{width - 8}" y="{height - 6}" font-size="11" text-anchor="end" fill="#555">'
                     f'{escape(labels[-1])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


BUCKETS_S = (60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400)


def bucket_width(span_s: float, max_buckets: int = 48) -> int:
    """The smallest width in ``BUCKETS_S`` that covers ``span_s`` in at most ``max_buckets`` buckets."""
    return next((b for b in BUCKETS_S if span_s / b < max_buckets), BUCKETS_S[-1])
