"""The seam between `ExTensor` and the differentiable operations that act on it.

`core` sits below `autograd` and must not import it, yet `a + b` on two ExTensors has to run
autograd's recorded `add`. Operations therefore register themselves here by name when
`extensor.autograd` is imported, and ExTensor's methods look them up at call time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

_IMPLEMENTATIONS: dict[str, Callable[..., Any]] = {}

F = TypeVar("F", bound=Callable[..., Any])


def register(name: str) -> Callable[[F], F]:
    """Register the decorated function as the implementation of the tensor operation `name`."""

    def decorator(fn: F) -> F:
        if name in _IMPLEMENTATIONS:
            raise RuntimeError(f"tensor operation {name!r} is registered twice")
        _IMPLEMENTATIONS[name] = fn
        return fn

    return decorator


def call(name: str, *args: Any, **kwargs: Any) -> Any:
    """Run the registered implementation of `name`."""
    try:
        fn = _IMPLEMENTATIONS[name]
    except KeyError:
        raise NotImplementedError(
            f"tensor operation {name!r} has no implementation; is extensor.autograd imported?"
        ) from None
    return fn(*args, **kwargs)
