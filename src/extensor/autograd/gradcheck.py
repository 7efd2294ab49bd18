"""Check a function's recorded gradients against central finite differences, as `torch.autograd.gradcheck`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from extensor.autograd.tape import Tape, no_grad
from extensor.core.tensor import Array, ExTensor


class GradcheckError(RuntimeError):
    """The analytic (tape) and numerical (finite-difference) Jacobians disagree."""


def _outputs(result: Any) -> tuple[ExTensor | None, ...]:
    """The function's floating-point outputs (None in the place of any other output)."""
    items = tuple(result) if isinstance(result, (tuple, list)) else (result,)
    if not items:
        raise ValueError("gradcheck: the function returned no outputs")
    for k, item in enumerate(items):
        if not isinstance(item, ExTensor):
            raise TypeError(f"gradcheck: output {k} of the function is a {type(item).__name__}, not ExTensor")
    return tuple(item if item.dtype.kind == "f" else None for item in items)


def gradcheck(
    fn: Callable[..., Any],
    inputs: ExTensor | Sequence[Any],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
) -> bool:
    """Compare the gradients the tape computes for `fn(*inputs)` with central finite differences.

    For every floating output y_k, every input x_i that requires gradients and every pair of
    elements, the analytic entry ∂y_k[j]/∂x_i[e] (one backward pass per output element, seeded with
    a one-hot gradient) must match the numerical one, (y_k(x + eps·e) - y_k(x - eps·e)) / (2 eps),
    within |analytic - numeric| <= atol + rtol·|numeric| (as torch.allclose).

    All the arithmetic is float64: the inputs that require gradients are replaced by float64
    copies (the caller's tensors are never modified); other inputs are passed through unchanged.

    Returns:
        True when every entry matches; False on a mismatch when `raise_exception` is False.

    Raises:
        GradcheckError: on the first mismatch (when `raise_exception`), naming the output, the input
            index and element, and the analytic and numerical values.
        ValueError / TypeError: bad arguments, or no input that requires gradients.
    """
    for name, value, low in (("eps", eps, 0.0), ("atol", atol, -1.0), ("rtol", rtol, -1.0)):
        if not isinstance(value, (int, float)) or not value > low or not np.isfinite(value):
            kind = "positive" if low == 0 else "non-negative"
            raise ValueError(f"gradcheck's {name} must be a finite {kind} number, got {value!r}")
    items = [inputs] if isinstance(inputs, ExTensor) else list(inputs)
    checked = [i for i, t in enumerate(items) if isinstance(t, ExTensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck needs at least one input ExTensor with requires_grad=True")
    for i in checked:
        if items[i].dtype.kind != "f":
            raise TypeError(f"gradcheck: input {i} requires gradients but has dtype {items[i].dtype}")
    args = list(items)
    for i in checked:
        args[i] = ExTensor(np.array(items[i].data, dtype=np.float64), requires_grad=True)

    with no_grad():
        reference = _outputs(fn(*args))
    sizes = [0 if y is None else y.size for y in reference]

    analytic = {(k, i): np.zeros((sizes[k], args[i].size)) for k in range(len(reference)) for i in checked}
    for k, size in enumerate(sizes):
        for j in range(size):
            tape = Tape()
            with tape:
                y = _outputs(fn(*args))[k]
            assert y is not None
            if not y.requires_grad or y.is_leaf:
                continue  # this output does not depend on any checked input: the row stays zero
            seed = np.zeros(y.size, dtype=y.dtype)
            seed[j] = 1
            grads = tape.backward(y, seed.reshape(y.shape))
            for i in checked:
                args[i].grad = None
                if args[i] in grads:
                    analytic[(k, i)][j] = grads[args[i]].reshape(-1)

    numeric = {key: np.zeros_like(value) for key, value in analytic.items()}
    for i in checked:
        flat: Array = args[i].data.reshape(-1)
        for e in range(flat.size):
            original = flat[e]
            flat[e] = original + eps
            with no_grad():
                plus = _outputs(fn(*args))
            flat[e] = original - eps
            with no_grad():
                minus = _outputs(fn(*args))
            flat[e] = original
            for k, (p, m) in enumerate(zip(plus, minus, strict=True)):
                if p is not None and m is not None:
                    diff = (p.data.astype(np.float64) - m.data.astype(np.float64)) / (2 * eps)
                    numeric[(k, i)][:, e] = diff.reshape(-1)

    for (k, i), a in analytic.items():
        n = numeric[(k, i)]
        bad = ~(np.abs(a - n) <= atol + rtol * np.abs(n))
        if bad.any():
            j, e = (int(v) for v in np.argwhere(bad)[0])
            element = np.unravel_index(e, args[i].shape)
            out = reference[k]
            out_element = np.unravel_index(j, out.shape) if out is not None else ()
            message = (
                f"gradcheck: Jacobian mismatch for output {k} element {tuple(map(int, out_element))} "
                f"with respect to input {i} element {tuple(map(int, element))}: "
                f"analytic {float(a[j, e]):.10g}, numeric {float(n[j, e]):.10g} (atol={atol}, rtol={rtol}; "
                f"{int(bad.sum())} of {bad.size} entries differ)"
            )
            if raise_exception:
                raise GradcheckError(message)
            return False
    return True
