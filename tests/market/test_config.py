from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from genads.cli import build_parser
from genads.commands.simulate import load_config
from genads.market.config import SimConfig, from_dict, to_dict

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("name", ["market.yaml", "market_tiny.yaml", "market_slate.yaml"])
def test_shipped_configs_load_and_round_trip(name: str) -> None:
    cfg = load_config(CONFIGS / name)
    assert from_dict(SimConfig, yaml.safe_load(yaml.safe_dump(to_dict(cfg)))) == cfg


def test_default_file_keeps_the_original_world() -> None:
    """configs/market.yaml's world is the default (issue 6's) world; the slate-effect world is its own file."""
    assert load_config(CONFIGS / "market.yaml").world == SimConfig().world
    slate = load_config(CONFIGS / "market_slate.yaml")
    assert slate.world.slate_effects and not SimConfig().world.slate_effects
    assert slate.seeds == load_config(CONFIGS / "market.yaml").seeds


def test_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"config\.world: unknown key\(s\) \['n_user'\]"):
        from_dict(SimConfig, {"world": {"n_user": 3}})
    with pytest.raises(ValueError, match=r"e2e.*payments"):
        from_dict(SimConfig, {"e2e": {"payments": "vcg"}})
    with pytest.raises(ValueError, match="candidates"):
        from_dict(SimConfig, {"cascade": {"candidates": 4}})
    bad = tmp_path / "bad.yaml"
    bad.write_text("world: [1, 2\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(bad)


def test_cli_lists_simulate() -> None:
    help_text = build_parser().format_help()
    assert "simulate" in help_text
