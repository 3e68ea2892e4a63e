"""Errors a user can cause, and the checks that raise them.

Library errors name the parameter (`epochs must be a whole number >= 1, got 0`); the CLI
prints them as one line, adds the flag name where it knows it, and exits with code 2.
"""

from __future__ import annotations

import math
import numbers


class UserError(Exception):
    """A problem with what the user asked for: bad option, missing file, corrupt data.

    `parameter` names the library parameter at fault ("epochs", "batch size"), so that a shell
    can say which of its own options that is (the CLI prefixes the flag, `--batch-size`).
    """

    def __init__(self, message: str, parameter: str | None = None):
        super().__init__(message)
        self.parameter = parameter


class DataError(UserError):
    """A dataset file is missing, unreadable, or fails its checksum."""


class CheckpointError(UserError):
    """A model checkpoint is missing, corrupt, or not a cnnscope checkpoint."""


def check_choice(what: str, value: str, allowed) -> str:
    """Return `value` if it is in `allowed`, else raise a UserError naming both."""
    allowed = list(allowed)
    if value not in allowed:
        raise UserError(f"unknown {what} {value!r}; allowed: {', '.join(map(str, allowed))}", what)
    return value


def check_positive(what: str, value, *, allow_zero: bool = False):
    """Return `value` if it is a finite number > 0 (or >= 0), else raise a UserError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{what} must be a number, got {value!r}", what) from None
    if math.isnan(number) or math.isinf(number):
        raise UserError(f"{what} must be a finite number, got {value!r}", what)
    if number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise UserError(f"{what} must be {bound}, got {value!r}", what)
    return value


def check_whole(what: str, value, minimum: int = 0) -> int:
    """`value` as an int if it is a whole number (an int, not a bool) >= `minimum`, else UserError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise UserError(f"{what} must be a whole number >= {minimum}, got {value!r}", what)
    return int(value)
