import pytest

from genads.cli import build_parser, command_modules, main


def test_help_lists_every_command_with_help_text(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert len(sub.choices) >= len(command_modules())
    for name, action in sub._name_parser_map.items():
        assert name in out
        helps = {c.dest: c.help for c in sub._choices_actions}
        assert helps.get(name), f"command {name} has no help text"
        assert action.description or helps[name]


def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    code = main(["data", "info", str(tmp_path / "nope")])
    assert code == 2
    assert "catalogue.parquet not found" in capsys.readouterr().err


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 50)" in text and "(default: click,conversion)" in text and "(default: None)" not in text


def test_config_file_sets_options_the_command_line_overrides(tmp_path, capsys):
    from genads.cli import apply_config

    cfg = tmp_path / "train.yaml"
    cfg.write_text("family: parallel\nsources: [text, attributes]\nmax-history: 20\nepochs: 3\nout: runs/x\n")
    argv = ["train", "data/shop", "--config", str(cfg), "--epochs", "5"]
    parser = build_parser()
    apply_config(parser, argv)
    args = parser.parse_args(argv)
    assert (args.family, args.sources, args.max_history, args.epochs) == ("parallel", "text,attributes", 20, 5)
    assert str(args.out) == "runs/x"  # a required flag given by the file
    cfg.write_text("family: parallel\nepoch: 3\n")
    assert main(["train", "data/shop", "--config", str(cfg), "--out", "x"]) == 2
    assert "unknown option 'epoch'" in capsys.readouterr().err
    cfg.write_text("family: slate\n")
    assert main(["train", "data/shop", "--config", str(cfg), "--out", "x"]) == 2
    assert "'slate' is not one of" in capsys.readouterr().err
    assert main(["train", "data/shop", "--config", str(tmp_path / "none.yaml"), "--out", "x"]) == 2
    assert "none.yaml" in capsys.readouterr().err


def test_tokenize_takes_sources_like_train(tmp_path):
    args = build_parser().parse_args(["tokenize", "d", "--out", "o", "--sources", "text"])
    old = build_parser().parse_args(["tokenize", "d", "--out", "o", "--features", "text"])
    assert args.features == old.features == "text"
