"""Demo step: auctions on the demo catalogue's synthetic bids — GSP, VCG and EGA's learned payments."""

from __future__ import annotations

import time

import numpy as np
import torch

from genads.auction.mechanisms import gsp, vcg
from genads.auction.payment_net import PaymentNet, PaymentNetConfig, PaymentTrainConfig, train_payment_net
from genads.auction.regret import AscentConfig
from genads.auction.simulate import compare, differentiable, popularity_pctr, sample_auctions
from genads.eval.report import figure_png

SLOT_CTR = (1.0, 0.6, 0.3)
CANDIDATES = 5
EGA_STEP_GRID = tuple(round(0.2 * i, 1) for i in range(1, 11))
"""{0.2, 0.4, ..., 2.0}: EGA's grid at its coarser step, for training speed."""


def _plot(rows: list[dict]) -> object:  # a matplotlib Figure
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["mechanism"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    axes[0].bar(names, [r["revenue_per_1000"] for r in rows], color="#4878a8")
    axes[0].set_ylabel("revenue per 1000 requests")
    axes[1].bar(names, [r["ascent_regret"] for r in rows], color="#c8553d", label="(b) ascent")
    axes[1].plot(names, [r["grid_regret"] for r in rows], "ko", label="(a) EGA grid")
    axes[1].set_ylabel("mean ex-post regret per ad")
    axes[1].legend()
    fig.tight_layout()
    return fig


def run(ctx) -> None:  # ctx: DemoContext
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows, log, net = _simulate(ctx)
    finally:
        torch.set_num_threads(threads)
    ctx.metrics["auction"] = {"mechanisms": rows, "train_revenue": log.revenue, "train_regret": log.regret,
                              "candidates": CANDIDATES, "slot_ctr": list(SLOT_CTR),
                              "seconds": round(time.perf_counter() - start, 2)}
    s = ctx.report.section("Auction")
    s.paragraphs.append(
        f"Each simulated request draws {CANDIDATES} candidate ads (by popularity) from the catalogue; an ad's "
        "pCTR rises with the log of its popularity (0.01–0.1) and its synthetic bid is its value per click. "
        f"Ranking by bid × pCTR fills {len(SLOT_CTR)} slots with position CTRs {SLOT_CTR}. GSP and VCG are "
        "the pure mechanisms; <em>learned</em> is EGA's payment network (price = sigmoid(MLP) × bid) trained "
        "by augmented Lagrangian on EGA's misreport grid. Regret (a) is that grid; (b) is a scaled-down "
        "search over random misreports with gradient ascent (GSP/VCG have no gradient: restarts only). "
        "VCG is truthful, so its regret is 0 up to float error; GSP's is what bid shading gains.")
    s.tables.append(("Mechanisms on the same auctions", rows))
    s.images.append(("Revenue and regret by mechanism", figure_png(_plot(rows))))
    ctx.artifacts["payment_net"] = net


def _simulate(ctx) -> tuple[list[dict], object, PaymentNet]:  # ctx: DemoContext
    cat, split = ctx.dataset.catalogue, ctx.split
    counts = np.bincount(np.concatenate(split.train), minlength=split.n_items + 1)
    popularity = counts[split.index_of(cat["ad_id"].to_numpy())].astype(float)
    bids = cat["bid"].to_numpy(dtype=float)
    pctr = popularity_pctr(popularity)
    rng = np.random.default_rng(ctx.seed)
    train = sample_auctions(bids, pctr, CANDIDATES, 1024 if ctx.fast else 4096, rng, weights=popularity + 1)
    test = sample_auctions(bids, pctr, CANDIDATES, 2000, rng, weights=popularity + 1)
    torch.manual_seed(ctx.seed)
    net = PaymentNet(PaymentNetConfig(n_bidders=CANDIDATES, slot_ctr=SLOT_CTR, hidden=32,
                                      bid_scale=float(np.median(bids)), quality_scale=0.05))
    values = torch.as_tensor(train.bids, dtype=torch.float32)[..., None]
    context = torch.as_tensor(train.quality, dtype=torch.float32)[..., None]
    log = train_payment_net(net, values, context, PaymentTrainConfig(
        iterations=40 if ctx.fast else 300, batch_size=128, lr=3e-3, rho_every=30, lambda_init=3.0,
        gammas=EGA_STEP_GRID, seed=ctx.seed), log_every=10)
    mechanisms = {"gsp": differentiable(gsp, np.array(SLOT_CTR)), "vcg": differentiable(vcg, np.array(SLOT_CTR)),
                  "learned": net}
    high = 2.0 * float(test.bids.max())
    audit = AscentConfig(restarts=32, steps=10 if ctx.fast else 30, lr=0.05 * float(np.median(bids)),
                         high=high, seed=ctx.seed)
    rows = compare(mechanisms, test, audit, audit_size=16 if ctx.fast else 64)
    return rows, log, net
