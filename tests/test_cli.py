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
