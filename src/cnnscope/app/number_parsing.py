"""User text to numbers: whole and finite numbers, bounded values, lists of numbers and indices.

The basics every other parser builds on: `check_text` (the length limit, before any text is
split or expanded), `whole_text` (ASCII digits only), `whole`/`bounded`/`finite` (values with
a stated range), `number`, `parse_numbers` and `parse_indices` (comma lists), and `parse_list`
(target lists such as '0-15,56' or 'all'). Every parser raises `UserError` with a message that
names the bad text. All of them are also importable from `cnnscope.app.parsing`.
"""

from __future__ import annotations

import math

from cnnscope.app.limits import MAX_TEXT
from cnnscope.errors import UserError


def whole_text(text: str) -> int | None:
    """The integer written in `text` as ASCII digits with an optional minus sign, else None."""
    text = text.strip()
    digits = text[1:] if text.startswith("-") else text
    if not digits or not digits.isascii() or not digits.isdigit() or len(digits) > 100:
        return None
    return int(text)


def check_text(text: str, what: str) -> str:
    """`text` if it is at most MAX_TEXT characters long, else UserError (before it is split or expanded)."""
    if len(text) > MAX_TEXT:
        raise UserError(f"{what} is {len(text)} characters long; the limit is {MAX_TEXT}")
    return text


def _parse_number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{what} must be a number, got {text!r}") from None
    if math.isnan(value) or math.isinf(value):
        raise UserError(f"{what} must be a finite number, got {text!r}")
    return value


def _parse_int(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:  # also for more than 4300 digits
        raise UserError(f"{what} must be a whole number, got {text!r}") from None


def whole(what: str, value, low: int | None = None) -> int:
    """A number given as text or float (argparse's type=float) that must be whole, as an int."""
    if value is None or isinstance(value, bool):
        raise UserError(f"{what} must be a whole number, got {value!r}")
    number = float(value)
    if math.isnan(number) or math.isinf(number) or not number.is_integer():
        raise UserError(f"{what} must be a whole number, got {value!r}")
    if low is not None and number < low:
        raise UserError(f"{what} must be >= {low}, got {value!r}")
    return int(number)


def bounded(what: str, value, low: int, high: int) -> int:
    """`whole(what, value, low)`, also refused above `high` (a stated limit, checked before any allocation)."""
    try:
        number = whole(what, value, low)
    except UserError as exc:
        raise UserError(str(exc), what) from None  # the parameter, so the CLI names its flag
    if number > high:
        raise UserError(f"{what} must be at most {high}, got {value!r}", what)
    return number


def finite(what: str, value: float) -> float:

    if math.isnan(value) or math.isinf(value):
        raise UserError(f"{what} must be a finite number, got {value!r}")
    return value


def parse_list(text: str, what: str, count: int) -> list[int] | None:
    """'all' -> None; '3', '0-15,56' -> numbers (checked against 0..count-1), without repeats, in order.

    Every number and range end is checked against 0..count-1 before a range is expanded, and the
    text is at most MAX_TEXT characters, so the result holds at most `count` numbers.
    """
    text = check_text((text or "").strip(), f"{what} list")
    if text.lower() == "all":
        return None
    numbers: dict[int, None] = {}
    for item in text.split(","):
        first, last = _list_item(item.strip(), what)
        for number in (first, last):
            if not 0 <= number < count:
                raise UserError(f"{what} {number} out of range: valid {what}s are 0..{count - 1}")
        numbers.update(dict.fromkeys(range(first, last + 1)))
    return list(numbers)


def _list_item(item: str, what: str) -> tuple[int, int]:
    """'7' -> (7, 7); '0-15' -> (0, 15); UserError for anything else."""
    low, dash, high = item.partition("-")
    try:
        first, last = (int(low), int(high)) if dash and low else (int(item), int(item))
    except ValueError:
        raise UserError(f"{what} {item!r} is not a number or range; expected e.g. '120', '0-15,56' or 'all'") from None
    if last < first:
        raise UserError(f"{what} range {item!r} runs backwards")
    return first, last


def parse_numbers(text: str, what: str, kind=float) -> list:

    values = []
    for item in check_text(text or "", f"{what} list").split(","):
        try:
            value = kind(item.strip())
        except (ValueError, OverflowError):
            raise UserError(f"{what} {item.strip()!r} is not a {'whole ' if kind is int else ''}number; "
                            f"give a comma-separated list like 3,7,14,28") from None
        if kind is float:
            finite(what, value)
        values.append(value)
    return values


def number(text: str, what: str) -> float:
    try:
        return float(check_text(text, what))
    except ValueError:
        raise UserError(f"{what} {text!r} is not a number") from None


def parse_indices(values: list[str]) -> list[int]:
    indices = []
    for value in values:
        for part in check_text(str(value), "index list").split(","):
            part = part.strip()
            index = whole_text(part)
            if index is None:
                raise UserError(f"index {part!r} is not a whole number")
            indices.append(index)
    return indices
