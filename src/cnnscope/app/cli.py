"""The `cnnscope` command line: a thin shell that finds its subcommands in `cnnscope.app.commands`.

Each module in `cnnscope/app/commands/` defines NAME, HELP, `add_arguments(parser)` and
`run(args) -> int`. User errors become one line on stderr and exit code 2; Ctrl+C becomes
"cnnscope: interrupted" and exit code 130 (the shell's code for SIGINT).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse

# Nothing else is imported at the top: until `main` runs, Ctrl+C cannot be caught, so the time
# before it must stay as short as the interpreter's own start.


def one_line_parser_class():
    """argparse's parser, but usage errors are one line (no usage dump) with exit code 2."""
    import argparse

    class OneLineParser(argparse.ArgumentParser):
        def error(self, message: str):  # noqa: D401
            sys.stderr.write(f"cnnscope {self.prog.split()[-1]}: error: {message}\n")
            sys.exit(2)

    return OneLineParser


def command_modules():
    import importlib
    import pkgutil

    from cnnscope.app import commands

    found = []
    for info in pkgutil.iter_modules(commands.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            found.append(module)
    return sorted(found, key=lambda m: (getattr(m, "ORDER", 50), m.NAME))


def build_parser(only: set[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `only`, just those commands get their options (some of which
    import torch), so `cnnscope --help` and `--version` answer at once."""
    from cnnscope import __version__

    parser_class = one_line_parser_class()
    parser = parser_class(prog="cnnscope", description="Train a small CNN on MNIST and see what it learned.")
    parser.add_argument("--version", action="version", version=f"cnnscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=parser_class)
    for module in command_modules():
        command = sub.add_parser(module.NAME, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
        if only is None or module.NAME in only:
            module.add_arguments(command)
        command.set_defaults(_run=module.run, _parser=command)
    return parser


def option_for(parser: argparse.ArgumentParser, parameter: str | None) -> str | None:
    """The command's flag for a library parameter ("batch size" -> "--batch-size"), if it has one."""
    if not parameter:
        return None
    dest = parameter.strip().lower().replace(" ", "_").replace("-", "_")
    for action in parser._actions:
        if action.dest == dest and action.option_strings:
            return action.option_strings[-1]
    return None


class _Interrupts:
    """Remembers a Ctrl+C: a library import that it cuts short (numpy's inside torch's) may turn
    the KeyboardInterrupt into another error, which still means "interrupted". While torch is
    imported a Ctrl+C is held until the import ends: raised inside the Python code that torch's C++
    start-up calls, it would abort the process ("terminate called ...")."""

    seen = False
    holding = False

    @classmethod
    def on_sigint(cls, signum, frame):
        cls.seen = True
        if not cls.holding:
            raise KeyboardInterrupt

    @classmethod
    def import_torch(cls) -> None:
        cls.holding = True
        try:
            import torch  # noqa: F401
        finally:
            cls.holding = False
        if cls.seen:
            raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run one command; Ctrl+C at any moment (also while torch is imported) is one line and exit code 130."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _Interrupts.on_sigint)
    try:
        return run_command(sys.argv[1:] if argv is None else list(argv))
    except BaseException as exc:
        if not (isinstance(exc, KeyboardInterrupt) or _Interrupts.seen):
            raise
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl+C must not interrupt the goodbye
        sys.stderr.write("cnnscope: interrupted\n")
        return 130


def run_command(argv: list[str]) -> int:
    from cnnscope.errors import UserError

    parser = build_parser(only={word for word in argv[:1] if not word.startswith("-")})
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        _Interrupts.import_torch()  # every command needs it
        return int(args._run(args) or 0)
    except UserError as exc:
        flag = option_for(args._parser, exc.parameter)
        message = " ".join(str(exc).splitlines())  # one line, whatever text the user gave
        where = f"{flag}: " if flag and flag not in message else ""
        sys.stderr.write(f"cnnscope {args.command}: error: {where}{message}\n")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
