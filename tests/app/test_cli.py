"""The command line shell: every command is listed, --version answers, usage errors exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cnnscope import __version__
from cnnscope.app.cli import build_parser, command_modules, main

COMMANDS = {"demo", "train", "predict", "evaluate", "summary", "activations", "patterns", "explain",
            "oip", "dream", "explore", "import-keras", "import-onnx", "compare", "sweep"}


def test_every_command_module_is_found_and_has_options():
    assert {module.NAME for module in command_modules()} == COMMANDS
    choices = build_parser()._subparsers._group_actions[0].choices
    for name in COMMANDS:
        options = [action for action in choices[name]._actions if action.dest != "help"]
        assert options, f"{name} has no options"
    # with `only`, the other commands are listed but not built (their imports are skipped)
    choices = build_parser(only={"oip"})._subparsers._group_actions[0].choices
    assert set(choices) == COMMANDS
    assert [a for a in choices["oip"]._actions if a.dest == "precursor"]
    assert [a.dest for a in choices["train"]._actions] == ["help"]


def test_version_and_help_answer_without_loading_torch():
    code = ("import sys\nfrom cnnscope.app.cli import main\n"
            "try:\n    main(['--version'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"cnnscope {__version__}"


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_unknown_command_and_option_are_one_line_errors_with_exit_code_2(capsys):
    for argv in (["frobnicate"], ["oip", "--no-such-option"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error:" in err


def test_no_command_prints_help_and_returns_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
