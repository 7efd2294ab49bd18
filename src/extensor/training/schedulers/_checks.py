"""Argument checks shared by the schedulers and the pure curves: numbers that name themselves in errors."""

from __future__ import annotations

import math
import numbers


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type. Also a ValueError, the type PyTorch's schedulers raise for
    these arguments, so code written against torch keeps catching it."""


def is_real(value: object) -> bool:
    """True for int/float-like numbers (NumPy scalars included), False for bools and the rest."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_integer(value: object) -> bool:
    """True for integer numbers (NumPy integers included), False for bools and the rest."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def require_real(name: str, value: object) -> float | int:
    """Return `value` as a Python int or float, or raise naming `name` if it is not a real number."""
    if not is_real(value):
        raise ArgumentTypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    if is_integer(value):
        return int(value)  # type: ignore[call-overload]
    number = float(value)  # type: ignore[arg-type]
    if math.isnan(number):
        raise ValueError(f"{name} must be a number, got nan")
    return number


def require_integer(name: str, value: object, minimum: int | None = None) -> int:
    """Return `value` as a Python int, or raise if it is not an integer >= `minimum`."""
    if not is_integer(value):
        raise ArgumentTypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    number = int(value)  # type: ignore[call-overload]
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {number}")
    return number


def require_positive(name: str, value: object) -> float | int:
    """Return `value` as a Python number, or raise if it is not a real number > 0."""
    number = require_real(name, value)
    if not number > 0:
        raise ValueError(f"{name} must be > 0, got {number}")
    return number


def require_callable(name: str, value: object) -> object:
    """Return `value`, or raise TypeError if it cannot be called."""
    if not callable(value):
        raise TypeError(f"{name} must be callable (a function of the epoch), got {type(value).__name__}")
    return value
