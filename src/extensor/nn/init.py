"""Weight initialisation, with torch.nn.init's formulas and an explicit NumPy random Generator.

Every function fills its tensor in place (an ExTensor, Parameter or NumPy array; a parameter bound
to a flat buffer stays bound) and returns it. Random ones draw from `generator`, or from
`extensor.core.random.default_generator()` when it is None, so a seeded run is bit-identical.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, TypeVar

import numpy as np

from extensor.core.random import resolve_generator
from extensor.core.tensor import Array, ExTensor

T = TypeVar("T", ExTensor, np.ndarray)

_LINEAR_GAINS = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
)


def _array(tensor: Any) -> Array:
    if isinstance(tensor, ExTensor):
        return tensor.data
    if isinstance(tensor, np.ndarray):
        return tensor
    raise TypeError(f"expected an ExTensor or a NumPy array to initialise, got {type(tensor).__name__}")


def _fill(tensor: T, values: Any) -> T:
    array = _array(tensor)
    array[...] = values
    return tensor


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (torch.nn.init.calculate_gain).

    1 for linear, convolutions and sigmoid; 5/3 for tanh; √2 for relu; √(2 / (1 + slope²)) for
    leaky_relu (slope `param`, default 0.01); 3/4 for selu.
    """
    if nonlinearity in _LINEAR_GAINS:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, bool) or not isinstance(param, (int, float)):
            raise ValueError(f"negative_slope {param!r} is not a valid number")
        else:
            slope = float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def calculate_fan_in_and_fan_out(tensor: Any) -> tuple[int, int]:
    """(fan_in, fan_out) = (shape[1]·r, shape[0]·r) with r the product of shape[2:] (as torch)."""
    shape = _array(tensor).shape
    if len(shape) < 2:
        raise ValueError(
            f"fan in and fan out cannot be computed for a tensor with fewer than 2 dimensions (shape {shape})"
        )
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def _fan(tensor: Any, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor: T, a: float = 0.0, b: float = 1.0, generator: np.random.Generator | None = None) -> T:
    """Fill with draws from U(a, b)."""
    if not a <= b:
        raise ValueError(f"uniform_ needs a <= b, got a={a}, b={b}")
    array = _array(tensor)
    return _fill(tensor, resolve_generator(generator).uniform(a, b, array.shape))


def normal_(
    tensor: T, mean: float = 0.0, std: float = 1.0, generator: np.random.Generator | None = None
) -> T:
    """Fill with draws from N(mean, std²)."""
    if std < 0:
        raise ValueError(f"normal_ needs std >= 0, got {std}")
    array = _array(tensor)
    return _fill(tensor, resolve_generator(generator).normal(mean, std, array.shape))


def constant_(tensor: T, val: float) -> T:
    """Fill with `val`."""
    return _fill(tensor, val)


def zeros_(tensor: T) -> T:
    """Fill with 0."""
    return _fill(tensor, 0)


def ones_(tensor: T) -> T:
    """Fill with 1."""
    return _fill(tensor, 1)


def xavier_uniform_(tensor: T, gain: float = 1.0, generator: np.random.Generator | None = None) -> T:
    """Glorot & Bengio (2010): U(−a, a) with a = gain·√(6 / (fan_in + fan_out))."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: T, gain: float = 1.0, generator: np.random.Generator | None = None) -> T:
    """Glorot & Bengio (2010): N(0, std²) with std = gain·√(2 / (fan_in + fan_out))."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def _kaiming_std(tensor: Any, a: float, mode: str, nonlinearity: str) -> float | None:
    if 0 in _array(tensor).shape:
        warnings.warn("initialising a zero-element tensor is a no-op", UserWarning, stacklevel=3)
        return None
    return calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))


def kaiming_uniform_(
    tensor: T,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: np.random.Generator | None = None,
) -> T:
    """He et al. (2015): U(−b, b) with b = gain·√(3 / fan), gain = calculate_gain(nonlinearity, a).

    `a` is the negative slope of the rectifier after this layer (leaky_relu only); `mode` picks
    fan_in (preserves the forward variance) or fan_out (the backward one).
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: T,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: np.random.Generator | None = None,
) -> T:
    """He et al. (2015): N(0, std²) with std = gain / √fan, gain = calculate_gain(nonlinearity, a)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std, generator)


def orthogonal_(tensor: T, gain: float = 1.0, generator: np.random.Generator | None = None) -> T:
    """Saxe et al. (2013): a (semi-)orthogonal matrix (tensor flattened to (shape[0], rest)), times `gain`.

    The QR factor of a Gaussian matrix with the signs of R's diagonal folded in, as torch does, so
    the result is uniformly distributed over orthogonal matrices.
    """
    array = _array(tensor)
    if array.ndim < 2:
        raise ValueError(f"orthogonal_ needs a tensor with at least 2 dimensions, got shape {array.shape}")
    if array.size == 0:
        return tensor
    rows = array.shape[0]
    cols = array.size // rows
    flat = resolve_generator(generator).normal(0.0, 1.0, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, (gain * q).reshape(array.shape))


def default_affine_(weight: Any, bias: Any | None, generator: np.random.Generator | None = None) -> None:
    """PyTorch's default initialisation of Linear and Conv layers, in place.

    ``kaiming_uniform_(weight, a=√5)`` — that is U(±1/√fan_in) — and, when there is a bias,
    U(±1/√fan_in) for it too (a bound of 0 when fan_in is 0), drawn in that order.
    """
    kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    if bias is not None:
        fan_in, _ = calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        uniform_(bias, -bound, bound, generator)
