"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """A problem with what the user asked for: bad option, missing file, corrupt data."""


class DataError(UserError):
    """A dataset file is missing, unreadable, or fails its checksum."""


class CheckpointError(UserError):
    """A model checkpoint is missing, corrupt, or not a cnnscope checkpoint."""


def check_choice(what: str, value: str, allowed) -> str:
    """Return `value` if it is in `allowed`, else raise a UserError naming both."""
    allowed = list(allowed)
    if value not in allowed:
        raise UserError(f"unknown {what} {value!r}; allowed: {', '.join(map(str, allowed))}")
    return value


def check_positive(what: str, value, *, allow_zero: bool = False):
    """Return `value` if it is a finite number > 0 (or >= 0), else raise a UserError."""
    import math

    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{what} must be a number, got {value!r}") from None
    if math.isnan(number) or math.isinf(number):
        raise UserError(f"{what} must be a finite number, got {value!r}")
    if number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise UserError(f"{what} must be {bound}, got {value!r}")
    return value
