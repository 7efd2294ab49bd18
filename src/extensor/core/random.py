"""The library's default random generator, its seed, and its state as plain JSON.

Every random draw in extensor (initialisation, dropout, `randn`, shuffling without an explicit
generator) comes from one `numpy.random.Generator` (PCG64), unless the caller passes its own.
It starts from a fixed seed, so an unseeded program is reproducible too; `manual_seed` reseeds it
*in place*, so code that holds `default_generator()` sees the new stream.

Its state is a JSON-serialisable dict (`get_rng_state`) — the 128-bit PCG64 words are written as
decimal strings, since many JSON readers lose integers beyond 2**53 — so a checkpoint can store
it next to the weights without pickle, and `set_rng_state` resumes the exact same stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The seed the default generator starts from (PyTorch's historical default seed).
DEFAULT_SEED = 67280421310721

_UINT64 = 2**64
_generator = np.random.Generator(np.random.PCG64(DEFAULT_SEED))
_initial_seed = DEFAULT_SEED


def default_generator() -> np.random.Generator:
    """The shared generator that every random operation uses when not given one."""
    return _generator


def resolve_generator(generator: np.random.Generator | None) -> np.random.Generator:
    """`generator` itself, or the default generator when it is None; anything else is a TypeError."""
    if generator is None:
        return _generator
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"generator must be a numpy.random.Generator or None, got {type(generator).__name__}")
    return generator


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the default generator in place and return it (as `torch.manual_seed`).

    `seed` must be an int in [-2**63, 2**64); negative seeds map to 2**64 + seed, as in PyTorch.
    """
    global _initial_seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    seed = int(seed)
    if not -(2**63) <= seed < _UINT64:
        raise ValueError(f"seed must be in [-2**63, 2**64), got {seed}")
    seed %= _UINT64
    _generator.bit_generator.state = np.random.PCG64(seed).state
    _initial_seed = seed
    return _generator


def initial_seed() -> int:
    """The seed the default generator was last seeded with."""
    return _initial_seed


def get_rng_state() -> dict[str, Any]:
    """The default generator's state as a JSON-serialisable dict (large integers as decimal strings)."""
    state = _generator.bit_generator.state
    return {
        "bit_generator": state["bit_generator"],
        "state": {"state": str(state["state"]["state"]), "inc": str(state["state"]["inc"])},
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
        "initial_seed": str(_initial_seed),
    }


def _word(value: Any, name: str, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"random state field {name!r} must be an integer or a decimal string, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"random state field {name!r} must be a decimal integer, got {value!r}") from None
    if not 0 <= number < 2**bits:
        raise ValueError(f"random state field {name!r} must be in [0, 2**{bits}), got {number}")
    return number


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the default generator from a dict produced by `get_rng_state` (validated before use)."""
    global _initial_seed
    if not isinstance(state, dict):
        raise TypeError(f"the random state must be a dict from get_rng_state(), got {type(state).__name__}")
    if state.get("bit_generator") != "PCG64":
        raise ValueError(
            f"the random state must be a PCG64 state, got bit_generator={state.get('bit_generator')!r}"
        )
    inner = state.get("state")
    if not isinstance(inner, dict) or set(inner) != {"state", "inc"}:
        raise ValueError(f"the random state needs a 'state' dict with keys 'state' and 'inc', got {inner!r}")
    new_state = {
        "bit_generator": "PCG64",
        "state": {"state": _word(inner["state"], "state", 128), "inc": _word(inner["inc"], "inc", 128)},
        "has_uint32": _word(state.get("has_uint32", 0), "has_uint32", 1),
        "uinteger": _word(state.get("uinteger", 0), "uinteger", 32),
    }
    seed = _word(state.get("initial_seed", _initial_seed), "initial_seed", 64)
    _generator.bit_generator.state = new_state
    _initial_seed = seed
