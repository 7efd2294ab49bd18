"""Declared hyperparameter checks and state buffers: an optimizer states its rules, the base enforces them.

An optimizer lists its hyperparameters' conditions the way a paper or torch's constructor
states them, as Python comparisons over the group's entries::

    hyperparameters = (
        Check("lr >= 0", "learning rate"),
        Check("0 <= betas[0] < 1", "beta parameter at index 0"),
        Check("0 <= betas[1] < 1", "beta parameter at index 1"),
        Flag("amsgrad"),
    )
    state = ("exp_avg", "exp_avg_sq", State("max_exp_avg_sq", when="amsgrad"))

A failed `Check` raises torch's message with the expected range appended, for example
``ValueError: Invalid beta parameter at index 0: 1.0 (expected 0 <= betas[0] < 1)``; a value of
the wrong type (a string, a bool where a number belongs, a tuple of the wrong length) raises
TypeError naming it. The expressions are parsed once, at class creation, into a small tree of
comparisons, names, subscripts, constants and ``and``/``or``/``not``: nothing is ``eval``-ed.
"""

from __future__ import annotations

import ast
import numbers
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Check",
    "Choice",
    "Condition",
    "Flag",
    "Integer",
    "Numbers",
    "Real",
    "Rules",
    "Says",
    "State",
    "require_bool",
    "require_real",
]


def require_real(value: Any, name: str) -> float:
    """`value` as a float, or TypeError when it is not a real number (bools are refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    return float(value)


def require_bool(value: Any, name: str) -> bool:
    """`value` as a bool, or TypeError when it is not a boolean."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r} of type {type(value).__name__}")
    return bool(value)


#: What an optimizer's `hyperparameters` holds: callables that raise for an invalid group.
Rules = tuple[Callable[[Mapping[str, Any]], None], ...]

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


@dataclass(frozen=True)
class Condition:
    """A boolean expression over a group's entries, parsed once: ``"0 <= betas[0] < 1"``, ``"momentum > 0"``.

    Names are the group's keys; ``name[k]`` indexes a tuple entry (which must then be a sequence
    with an element `k`); referenced values must be real numbers, or booleans when the name
    stands alone as an operand of ``and``/``or``/``not`` or as the whole expression.
    """

    source: str
    _tree: ast.expr = field(init=False, repr=False, compare=False)
    #: the operands the expression reads, as (key, index or None), in order of appearance
    operands: tuple[tuple[str, int | None], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        tree = ast.parse(self.source, mode="eval").body
        operands: list[tuple[str, int | None]] = []
        _check_syntax(tree, operands, self.source)
        object.__setattr__(self, "_tree", tree)
        object.__setattr__(self, "operands", tuple(dict.fromkeys(operands)))

    def __call__(self, group: Mapping[str, Any]) -> bool:
        """Whether `group` satisfies the condition (TypeError for an operand of the wrong type)."""
        return bool(_evaluate(self._tree, group))

    def values(self, group: Mapping[str, Any]) -> str:
        """The operands' values in `group`, for a message: ``"0.9"`` or ``"0.5, 1.2"``."""
        return ", ".join(str(_operand(group, key, index)) for key, index in self.operands)


def _check_syntax(node: ast.expr, operands: list[tuple[str, int | None]], source: str) -> None:
    """Refuse anything but comparisons, names, ``name[int]``, numeric constants and boolean logic."""
    if isinstance(node, ast.Compare):
        if not all(type(op) in _COMPARE for op in node.ops):
            raise ValueError(f"unsupported comparison in hyperparameter condition {source!r}")
        for part in (node.left, *node.comparators):
            _check_syntax(part, operands, source)
    elif isinstance(node, ast.BoolOp):
        for part in node.values:
            _check_syntax(part, operands, source)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        _check_syntax(node.operand, operands, source)
    elif isinstance(node, ast.Name):
        operands.append((node.id, None))
    elif (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, int)
    ):
        operands.append((node.value.id, node.slice.value))
    elif not (isinstance(node, ast.Constant) and isinstance(node.value, (int, float))):
        raise ValueError(
            f"unsupported expression {ast.unparse(node)!r} in hyperparameter condition {source!r}"
        )


def _operand(group: Mapping[str, Any], key: str, index: int | None) -> Any:
    value = group[key]
    if index is None:
        return value
    if not isinstance(value, (tuple, list)) or len(value) <= index:
        raise TypeError(f"{key} must be a tuple of numbers with an element {index}, got {value!r}")
    return value[index]


def _evaluate(node: ast.expr, group: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Compare):
        left = _number(node.left, group)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _number(right_node, group)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BoolOp):
        results = (_truth(part, group) for part in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.Not):
            return not _truth(node.operand, group)
        return -_number(node.operand, group)
    return _truth(node, group)


def _number(node: ast.expr, group: Mapping[str, Any]) -> float:
    if isinstance(node, ast.Constant):
        return float(node.value)  # type: ignore[arg-type]  # _check_syntax admits numbers only
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_number(node.operand, group)
    if isinstance(node, ast.Name):
        return require_real(group[node.id], node.id)
    if isinstance(node, ast.Subscript):
        assert isinstance(node.value, ast.Name) and isinstance(node.slice, ast.Constant)
        assert isinstance(node.slice.value, int)
        return require_real(_operand(group, node.value.id, node.slice.value), ast.unparse(node))
    raise TypeError(f"{ast.unparse(node)!r} is not a number")


def _truth(node: ast.expr, group: Mapping[str, Any]) -> bool:
    if isinstance(node, ast.Name):
        return require_bool(group[node.id], node.id)
    return bool(_evaluate(node, group))


class Check:
    """A hyperparameter condition with torch's wording: ``Check("lr >= 0", "learning rate")``.

    Fails with ``ValueError("Invalid learning rate: -1.0 (expected lr >= 0)")``. `label` is the
    phrase torch uses after "Invalid" (``"epsilon value"``, ``"beta parameter at index 0"``).
    With ``sentence=True`` the label is a whole sentence, followed by the operands by name:
    ``Nesterov momentum requires a momentum and zero dampening (got nesterov=True, momentum=0.0, ...)``.
    """

    def __init__(self, condition: str, label: str, *, sentence: bool = False) -> None:
        self.condition = Condition(condition)
        self.label = label
        self.sentence = sentence

    def __call__(self, group: Mapping[str, Any]) -> None:
        """Raise unless `group` satisfies the condition."""
        if self.condition(group):
            return
        if self.sentence:
            named = ", ".join(
                f"{key if index is None else f'{key}[{index}]'}={_operand(group, key, index)!r}"
                for key, index in self.condition.operands
            )
            raise ValueError(f"{self.label} (got {named})")
        values, source = self.condition.values(group), self.condition.source
        raise ValueError(f"Invalid {self.label}: {values} (expected {source})")

    def __repr__(self) -> str:
        return f"Check({self.condition.source!r}, {self.label!r})"


class Says:
    """A condition refused with torch's own sentence: ``Says("lr >= 0", "Learning rate should be >= 0
    but is: {lr}")`` raises ``ValueError("Learning rate should be >= 0 but is: -1.0")``.

    The message is formatted with the group's entries (``{eps[1]}`` indexes a tuple); a NaN fails
    every comparison, so it is refused as torch's ``if not 0.0 <= x`` refuses it.
    """

    def __init__(self, condition: str, message: str) -> None:
        self.condition = Condition(condition)
        self.message = message

    def __call__(self, group: Mapping[str, Any]) -> None:
        """Raise ValueError (TypeError for an operand that is not a number) unless `group` passes."""
        if not self.condition(group):
            raise ValueError(self.message.format_map(group))

    def __repr__(self) -> str:
        return f"Says({self.condition.source!r}, {self.message!r})"


class Real:
    """A real-number hyperparameter with no range of its own: ``Real("dampening")``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, group: Mapping[str, Any]) -> None:
        """Raise TypeError unless ``group[name]`` is a real number (bools refused)."""
        require_real(group[self.name], self.name)

    def __repr__(self) -> str:
        return f"Real({self.name!r})"


class Numbers:
    """A tuple of real numbers of a fixed length: ``Numbers("betas", 2)`` (a pair, as torch's betas)."""

    def __init__(self, name: str, length: int) -> None:
        self.name, self.length = name, length

    def __call__(self, group: Mapping[str, Any]) -> None:
        """Raise TypeError unless ``group[name]`` is a tuple or list of `length` real numbers."""
        value = group[self.name]
        what = "a pair" if self.length == 2 else f"a tuple of {self.length} numbers"
        if not isinstance(value, (tuple, list)) or len(value) != self.length:
            raise TypeError(f"{self.name} must be {what}, got {value!r}")
        for index, item in enumerate(value):
            require_real(item, f"{self.name}[{index}]")

    def __repr__(self) -> str:
        return f"Numbers({self.name!r}, {self.length})"


class Flag:
    """A boolean hyperparameter: ``Flag("maximize")`` refuses anything but True/False."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, group: Mapping[str, Any]) -> None:
        """Raise TypeError unless ``group[name]`` is a bool."""
        require_bool(group[self.name], self.name)

    def __repr__(self) -> str:
        return f"Flag({self.name!r})"


class Integer:
    """An integer hyperparameter with a lower bound: ``Integer("history_size", minimum=1)``."""

    def __init__(self, name: str, minimum: int | None = None, optional: bool = False) -> None:
        self.name, self.minimum, self.optional = name, minimum, optional

    def __call__(self, group: Mapping[str, Any]) -> None:
        """Raise TypeError for a non-integer, ValueError for one below `minimum`."""
        value = group[self.name]
        if value is None and self.optional:
            return
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{self.name} must be an integer, got {value!r} of type {type(value).__name__}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"Invalid {self.name} value: {value} (expected {self.name} >= {self.minimum})")

    def __repr__(self) -> str:
        return f"Integer({self.name!r}, minimum={self.minimum!r})"


class Choice:
    """A hyperparameter taking one of a few values: ``Choice("line_search_fn", (None, "strong_wolfe"))``."""

    def __init__(self, name: str, options: tuple[Any, ...]) -> None:
        self.name, self.options = name, options

    def __call__(self, group: Mapping[str, Any]) -> None:
        """Raise ValueError unless ``group[name]`` is one of `options`."""
        value = group[self.name]
        if not any(
            value is option or (type(value) is type(option) and value == option) for option in self.options
        ):
            raise ValueError(f"{self.name} must be one of {list(self.options)!r}, got {value!r}")

    def __repr__(self) -> str:
        return f"Choice({self.name!r}, {self.options!r})"


class State:
    """A state buffer kept only when a condition on the group holds: ``State("grad_avg", when="centered")``.

    The condition is a `Condition` over the group's entries, such as ``"momentum > 0"``.
    """

    def __init__(self, name: str, when: str) -> None:
        self.name = name
        self.when = Condition(when)

    def __repr__(self) -> str:
        return f"State({self.name!r}, when={self.when.source!r})"
