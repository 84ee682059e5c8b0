"""genads.load(run): a trained run of either family as a recommender in the user's own ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import genads
from genads.cli import main


def genads_cli(*args: object) -> None:
    assert main([str(a) for a in args]) == 0, args


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    genads_cli("data", "example", "--out", root / "csv", "--users", "80")
    genads_cli("data", "import", root / "csv/events.csv", "--format", "csv", "--items", root / "csv/catalogue.csv",
               "--map", "user_id=user,ad_id=item,timestamp=ts,action=kind", "--items-map", "advertiser_id=advertiser",
               "--action-map", "purchase=conversion", "--out", root / "data", "--quiet")
    genads_cli("train", root / "data", "--family", "parallel", "--sources", "attributes", "--out", root / "parallel",
               "--epochs", "2", "--quiet")
    genads_cli("train", root / "data", "--family", "parallel", "--sources", "attributes", "--preset", "hybrid",
               "--out", root / "parallel-hybrid", "--epochs", "2", "--quiet")
    genads_cli("tokenize", root / "data", "--out", root / "sids", "--features", "attributes", "--levels", "2",
               "--codebook", "8", "--quiet")
    genads_cli("train", root / "data", "--sids", root / "sids", "--out", root / "sid", "--epochs", "2", "--quiet")
    return root


@pytest.mark.parametrize("family", ["parallel", "sid"])
def test_recommend_in_the_users_ids(runs, family):
    run = genads.load(runs / family)
    assert run.family == family
    user = run.users()[3]
    assert isinstance(user, str) and user.startswith("u")
    top = run.recommend(user=user, k=5)
    assert list(top.columns) == ["rank", "ad", "score", "title"] and top["rank"].tolist() == [1, 2, 3, 4, 5]
    assert all(isinstance(a, str) and a.startswith("ad-") for a in top["ad"]) and top["ad"].is_unique
    assert (np.diff(top["score"].to_numpy()) <= 1e-6).all()  # best first
    # the scores recommend reports are the model's log-probabilities, which score() computes on its own path
    again = run.score(top["ad"].tolist(), user=user)
    np.testing.assert_allclose(again.to_numpy(), top["score"].to_numpy(), atol=1e-4)
    history = run.history(user)
    assert run.recommend(history=history, k=5)["ad"].tolist() == top["ad"].tolist()  # same history, same slate
    ruled_out = run.recommend(user=user, k=5, exclude_history=True)
    assert len(ruled_out) == 5 and not set(ruled_out["ad"]) & set(history)


def test_clear_errors_in_the_users_ids(runs):
    run = genads.load(runs / "parallel")
    with pytest.raises(KeyError, match="nobody"):
        run.recommend(user="nobody")
    with pytest.raises(KeyError, match=r"history\[1\] = 'ad-nope'"):
        run.recommend(history=[run.history(run.users()[0])[0], "ad-nope"])
    with pytest.raises(ValueError, match="exactly one"):
        run.recommend(user=run.users()[0], history=[])
    cold = run.recommend(history=[], k=3)  # a new user with no history: still a slate
    assert len(cold) == 3


def test_cli_recommend_is_the_library_call(runs, capsys):
    run = genads.load(runs / "sid")
    user = run.users()[3]
    genads_cli("recommend", runs / "sid", "--user", user, "-k", "3")
    printed = capsys.readouterr().out
    assert f"user {user}" in printed
    for ad in run.recommend(user=user, k=3)["ad"]:
        assert f"ad {ad} " in printed


def test_positive_actions_are_a_training_choice_kept_by_the_run(runs, tmp_path, capsys):
    genads_cli("data", "import", runs / "csv/events.csv", "--format", "csv", "--items", runs / "csv/catalogue.csv",
               "--map", "user_id=user,ad_id=item,timestamp=ts,action=kind", "--items-map", "advertiser_id=advertiser",
               "--action-map", "purchase=conversion", "--out", tmp_path / "data")
    assert "training uses clicks and conversions unless" in capsys.readouterr().out  # the example has views
    genads_cli("train", runs / "data", "--family", "parallel", "--sources", "attributes", "--out", tmp_path / "all",
               "--epochs", "1", "--quiet", "--positive-actions", "impression,click,conversion")
    default, everything = genads.load(runs / "parallel"), genads.load(tmp_path / "all")
    assert everything.config["positive_actions"] == ["impression", "click", "conversion"]
    assert everything.split.config.positive_actions == ("impression", "click", "conversion")
    n = lambda run: sum(len(s) for s in run.split.train)  # noqa: E731
    assert n(everything) > n(default)  # the views are training events now
    capsys.readouterr()
    assert main(["train", str(runs / "data"), "--family", "parallel", "--out", str(tmp_path / "bad"),
                 "--positive-actions", "click,like"]) == 2
    assert "unknown action(s) ['like']" in capsys.readouterr().err


def test_parallel_train_reads_the_vectors_tokenize_cached(runs, tmp_path, monkeypatch):
    """One MiniLM encoding per title, shared by tokenize and parallel training (it re-encoded on every run)."""
    from genads.encode.text import TextEncoder

    cache = tmp_path / "cache"
    genads_cli("tokenize", runs / "data", "--out", tmp_path / "sids", "--features", "text", "--levels", "2",
               "--codebook", "8", "--quiet", "--cache-dir", cache)
    assert list(cache.glob("*.safetensors"))

    def no_model(self):
        raise AssertionError("MiniLM loaded although every title was cached")

    monkeypatch.setattr(TextEncoder, "model", property(no_model))
    genads_cli("train", runs / "data", "--family", "parallel", "--sources", "text", "--out", tmp_path / "run",
               "--epochs", "1", "--quiet", "--cache-dir", cache)
    assert genads.load(tmp_path / "run").recommend(user=genads.load(tmp_path / "run").users()[0], k=3).shape[0] == 3


@pytest.mark.parametrize("family", ["parallel", "sid", "parallel-hybrid"])
@pytest.mark.parametrize("bid_alpha", [0.0, 1.0])
def test_an_exported_bundle_serves_the_offline_candidates(runs, tmp_path, family, bid_alpha):
    """Offline/online parity: the serving engine on an exported bundle decodes the same candidates, in the same
    order (up to exact ties), as the run's own recommender for the same histories and bids (bids off, and
    token-level bids on); 'parallel-hybrid' is a parallel run whose item score has an ID term (preset hybrid)."""
    from genads.decode.bidding import BidConfig
    from genads.families import family_of
    from genads.serve.bundle import load_bundle
    from genads.serve.engine import AdEngine, ServeConfig, seed_campaigns
    from genads.serve.ledger import MICROS, SQLiteLedger

    genads_cli("export", runs / family, "--out", tmp_path / "bundle")
    bundle = load_bundle(tmp_path / "bundle")
    ledger = SQLiteLedger(tmp_path / "ledger.sqlite")
    seed_campaigns(ledger, bundle)
    k = 8
    engine = AdEngine(bundle, ledger, ServeConfig(bid_alpha=bid_alpha, beam=k))
    run = genads.load(runs / family)
    rec = run.recommender
    assert len(engine.live) == len(bundle.ads) and (bundle.codes == run.codes).all()
    bids = np.zeros(len(run.codes))
    for item, (_, micros) in engine.live.items():  # the ledger's bids (whole micros), offline too
        bids[item] = micros / MICROS
    hist = np.zeros((12, rec.config.max_items), dtype=np.int64)
    for row, user in enumerate(run.users()[:12]):
        items = run._user_items(user)[-rec.config.max_items:]
        hist[row, len(hist[row]) - len(items):] = items
    offline, off_lp = family_of(rec).generator(rec).pool(hist, k, bids=bids if bid_alpha else None,
                                                     bid_config=BidConfig(alpha=bid_alpha))
    with engine.lock:
        online, on_lp = engine.candidates.top(hist, [k] * len(hist))
    ledger.close()
    # the ID term reaches scores of ~100, summed in float32 offline and float64 online: equal to ~1e-5 absolute
    np.testing.assert_allclose(on_lp, off_lp, rtol=1e-5, atol=1e-4 if family == "parallel-hybrid" else 0.0)
    # ads with identical codes tie exactly and either order is right: the scores agree position by position (above),
    # and so do the ads but for the group tied with the last one, which may swap with tied ads just outside the cut
    for row in range(len(hist)):
        kept = [{int(a) for s, a in zip(lp[row], ads[row], strict=True) if not np.isclose(s, lp[row, -1], atol=1e-3)}
                for lp, ads in ((off_lp, offline), (on_lp, online))]
        assert kept[0] == kept[1] and len(kept[0]) >= k // 2  # most of every slate is compared ad for ad
