"""`genads auction bench|train-payments`: the surface, a tiny bench, and a save/load round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from genads.cli import build_parser, main
from genads.commands.auction import load_payment_net


def test_help_lists_both_actions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["auction", "--help"])
    out = capsys.readouterr().out
    assert "bench" in out and "train-payments" in out


def test_bench_without_learned_settings_prints_the_mechanism_table(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert main(["auction", "bench", "--quick", "--settings", "", "--profiles", "20000", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    rows = {r["setting"]: r for r in record["mechanisms"]}
    two = rows["1 item, 2 bidders"]
    assert two["myerson_uniform"] == pytest.approx(5 / 12, abs=0.01)
    assert two["second_price"] == pytest.approx(1 / 3, abs=0.01)
    assert rows["3 slots, 4 bidders (per 1000 requests)"]["gsp"] > rows["3 slots, 4 bidders (per 1000 requests)"]["vcg"]
    assert "Pure mechanisms" in capsys.readouterr().out


def test_bench_rejects_unknown_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["auction", "bench", "--quick", "--settings", "9x9", "--profiles", "100"]) == 2
    assert "--settings" in capsys.readouterr().err


def test_bench_learned_setting_row(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    assert main(["auction", "bench", "--quick", "--settings", "1x2", "--iterations", "30", "--profiles", "1000",
                 "--out", str(out)]) == 0
    row = json.loads(out.read_text())["learned"]["1x2"]
    assert row["optimum"] == pytest.approx(5 / 12)
    assert row["ratio"] == pytest.approx(row["revenue"] / row["optimum"])
    assert row["ascent_regret"] >= 0 and row["goal_met"] in (True, False)


def test_train_payments_saves_a_loadable_network(tmp_path: Path) -> None:
    out = tmp_path / "pay"
    assert main(["auction", "train-payments", "--out", str(out), "--bidders", "3", "--slots", "1.0,0.5",
                 "--samples", "512", "--iterations", "20", "--batch-size", "64", "--hidden", "8",
                 "--restarts", "4", "--steps", "5"]) == 0
    meta = json.loads((out / "config.json").read_text())
    assert meta["payment_net"]["n_bidders"] == 3 and meta["train"]["iterations"] == 20
    assert {"grid", "ascent"} <= set(meta["held_out"])
    net = load_payment_net(out)
    bids, context = torch.rand(8, 3, 1), torch.full((8, 3, 1), 0.05)
    click, pay = net(bids, context)
    assert (pay <= click[..., 0] * bids[..., 0] + 1e-7).all()
    assert not list(out.glob(".*"))  # no temp files left behind
