"""L-BFGS: limited-memory BFGS with an optional strong-Wolfe line search, as torch.optim.LBFGS.

Nocedal, "Updating Quasi-Newton Matrices with Limited Storage" (Mathematics of Computation, 1980);
Liu & Nocedal, "On the limited memory BFGS method for large scale optimization" (Mathematical
Programming, 1989); the line search is Algorithms 3.5/3.6 of Nocedal & Wright, "Numerical
Optimization" (2006), in the form of Schmidt's minFunc that torch ports.

The parameters' flat buffer is the vector x of the algorithm and its gradient buffer is ∇f(x)
(absent gradients count as zeros), so the vector work is a few numba loops over contiguous
arrays: the two-loop recursion over a ring of (s, y) pairs is one kernel, as are the history
update, the gather of the gradient and the moves along the direction.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import numpy as np
from numba import njit

from extensor.core.tensor import Array, ExTensor
from extensor.training.optimizers.declare import Check, Integer, Real, Rules
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, _Pack

__all__ = ["LBFGS"]

_GROUPS_MESSAGE = "LBFGS doesn't support per-parameter options (parameter groups)"
#: The state keys torch keeps in the first parameter's entry, in its usual order.
_MEMORY_KEYS = ("d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss")
_REDUCTION_MATH = {"reassoc", "contract"}  # sums may be reassociated (and vectorised); updates never are


def _line_search_rule(group: Mapping[str, Any]) -> None:
    """Refuse a `line_search_fn` other than None and "strong_wolfe" (torch: at step time)."""
    value = group["line_search_fn"]
    if value is not None and not (isinstance(value, str) and value == "strong_wolfe"):
        raise ValueError(f"Invalid line_search_fn: {value!r}; only 'strong_wolfe' is supported (or None)")


# ----------------------------------------------------------------------------- kernels
@njit(cache=True, fastmath=_REDUCTION_MATH)
def _dot(a: Array, b: Array) -> float:
    """Σ a·b accumulated in float64."""
    total = 0.0
    for j in range(a.size):
        total += np.float64(a[j]) * np.float64(b[j])
    return total


@njit(cache=True)
def _gather(grad: Array, present: Array, offsets: Array, out: Array) -> tuple[Any, float]:
    """out = the gradient, zeros where a tensor has none; return (max |g| in g's dtype, NaN-sticky,
    as torch's ``abs().max()``; Σ |g| in float64)."""
    largest = grad.dtype.type(0)
    total = 0.0
    nan = False
    for k in range(present.size):
        lo, hi = offsets[k], offsets[k + 1]
        if present[k]:
            for i in range(lo, hi):
                v = grad[i]
                out[i] = v
                a = abs(v)
                nan = nan or a != a
                largest = max(largest, a)
                total += np.float64(a)
        else:
            out[lo:hi] = 0
    return (grad.dtype.type(np.nan) if nan else largest), total


@njit(cache=True)
def _abs_max(d: Array, t: Any) -> Any:
    """max |t · d| computed in d's dtype (NaN-sticky), torch's ``d.mul(t).abs().max()``."""
    largest = d.dtype.type(0)
    for j in range(d.size):
        a = abs(d[j] * t)
        if a != a:
            return a
        largest = max(largest, a)
    return largest


@njit(cache=True)
def _axpy(x: Array, t: Any, d: Array) -> None:
    """x ← x + t · d in place (torch's ``_add_grad(t, d)``)."""
    for j in range(x.size):
        x[j] = x[j] + t * d[j]


@njit(cache=True, fastmath=_REDUCTION_MATH)
def _new_pair(grad: Array, prev: Array, d: Array, t: Any, y: Array, s: Array) -> tuple[float, float]:
    """y = g − g_prev, s = t · d; return (yᵀs, yᵀy) in float64."""
    ys = 0.0
    yy = 0.0
    for j in range(grad.size):
        yj = grad[j] - prev[j]
        sj = d[j] * t
        y[j] = yj
        s[j] = sj
        ys += np.float64(yj) * np.float64(sj)
        yy += np.float64(yj) * np.float64(yj)
    return ys, yy


@njit(cache=True)
def _two_loop(
    grad: Array, dirs: Array, stps: Array, ro: Array, head: int, count: int, h_diag: Any, al: Array, d: Array
) -> None:
    """d = −H·g by the two-loop recursion over the `count` newest pairs of the ring (oldest at `head`)::

        q = −g;  for i newest → oldest:  αᵢ = ρᵢ sᵢᵀq,  q ← q − αᵢ yᵢ
        r = H₀ q;  for i oldest → newest:  βᵢ = ρᵢ yᵢᵀr,  r ← r + (αᵢ − βᵢ) sᵢ

    The scalars are rounded to the vectors' dtype, as torch's 0-d tensors are.
    """
    cast = d.dtype.type
    rows = dirs.shape[0]
    for j in range(d.size):
        d[j] = -grad[j]
    for i in range(count - 1, -1, -1):
        r = (head + i) % rows
        a = cast(_dot(stps[r], d)) * ro[r]
        al[i] = a
        y = dirs[r]
        for j in range(d.size):
            d[j] = d[j] + (-a) * y[j]
    for j in range(d.size):
        d[j] = d[j] * h_diag
    for i in range(count):
        r = (head + i) % rows
        c = al[i] - cast(_dot(dirs[r], d)) * ro[r]
        s = stps[r]
        for j in range(d.size):
            d[j] = d[j] + c * s[j]


# ----------------------------------------------------------------------------- line search
def _cubic_interpolate(x1: Any, f1: Any, g1: Any, x2: Any, f2: Any, g2: Any, bounds: Any = None) -> Any:
    """Minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to `bounds` (minFunc's)."""
    xmin_bound, xmax_bound = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square >= 0:
        d2 = np.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def _strong_wolfe(
    evaluate: Callable[[Any], tuple[float, Array, Any]],
    t: Any,
    d: Array,
    f: float,
    g: Array,
    gtd: Any,
    max_ls: int,
    c1: float = 1e-4,
    c2: float = 0.9,
    tolerance_change: float = 1e-9,
) -> tuple[float, Array, Any, int]:
    """Bracketing then zoom (Nocedal & Wright 3.5/3.6) for a step t along d meeting the strong Wolfe
    conditions f(t) ≤ f + c1 t gtd and |∇f(t)ᵀd| ≤ −c2 gtd; `evaluate(t)` gives (f, g, gᵀd) at x + t d.

    Returns (f, g, t, evaluations). Vector-valued quantities are never modified in place, so no copies.
    Scalars keep torch's types: Python floats for losses, the dtype's NumPy scalars for tensor values.
    """
    d_norm = _abs_max(d, d.dtype.type(1))
    f_new, g_new, gtd_new = evaluate(t)
    evals = 1
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    bracket: list[Any] = []
    bracket_f: list[Any] = []
    bracket_g: list[Array] = []
    bracket_gtd: list[Any] = []
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f, bracket_g = [t_prev, t], [f_prev, f_new], [g_prev, g_new]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f, bracket_g = [t_prev, t], [f_prev, f_new], [g_prev, g_new]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        # extrapolate
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        previous = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = previous, f_new, g_new, gtd_new
        f_new, g_new, gtd_new = evaluate(t)
        evals += 1
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    # zoom: shrink the bracket until a point satisfies the conditions
    insufficient_progress = False
    low, high = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(
            bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1]
        )
        top, bottom = max(bracket), min(bracket)
        eps = 0.1 * (top - bottom)
        if min(top - t, t - bottom) < eps:  # too close to an end: move 0.1 of the bracket inside
            if insufficient_progress or t >= top or t <= bottom:
                t = top - eps if abs(t - top) < abs(t - bottom) else bottom + eps
                insufficient_progress = False
            else:
                insufficient_progress = True
        else:
            insufficient_progress = False
        f_new, g_new, gtd_new = evaluate(t)
        evals += 1
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low]:
            bracket[high], bracket_f[high], bracket_g[high], bracket_gtd[high] = t, f_new, g_new, gtd_new
            low, high = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                bracket[high], bracket_f[high] = bracket[low], bracket_f[low]
                bracket_g[high], bracket_gtd[high] = bracket_g[low], bracket_gtd[low]
            bracket[low], bracket_f[low], bracket_g[low], bracket_gtd[low] = t, f_new, g_new, gtd_new
    return bracket_f[low], bracket_g[low], bracket[low], evals


# ----------------------------------------------------------------------------- state
class _Memory:
    """The optimizer's global state: counters, direction, gradient and a ring of (s, y) pairs.

    The ring has ``history_size + 1`` rows so that a new pair can be written to the spare row
    before knowing whether it is kept (yᵀs > 1e-10) without overwriting the oldest one.
    """

    def __init__(self, numel: int, dtype: np.dtype[Any], history_size: int) -> None:
        self.func_evals = 0
        self.n_iter = 0
        self.has_memory = False  # torch's d, t, old_dirs, ... exist (a step entered its loop)
        self.d = np.zeros(numel, dtype=dtype)
        self.prev_flat_grad = np.zeros(numel, dtype=dtype)
        self.grad = np.zeros(numel, dtype=dtype)  # the gradient gathered after each closure
        self.x_init = np.empty(0, dtype=dtype)  # the line search's starting point, allocated on use
        self.t: Any = 0.0
        self.h_diag: Any = 1
        self.prev_loss = 0.0
        self.al_set: int | None = None  # torch's "al": None before it exists, else entries set
        self.al_first = True  # "al" precedes d, t, ... in torch's dict (it was created before them)
        self.history_size = history_size
        self.dirs: Array = np.empty((0, numel), dtype=dtype)  # the ring of y's, (history_size + 1, numel)
        self.stps: Array = np.empty((0, numel), dtype=dtype)  # the ring of s's
        self.ro: Array = np.empty(0, dtype=dtype)  # 1 / yᵀs per ring row
        self.al: Array = np.empty(0, dtype=dtype)  # the two-loop's α, oldest pair first
        self.head = self.count = 0  # the oldest kept pair's row, and how many are kept
        self.resize(history_size)

    def resize(self, history_size: int) -> None:
        """(Re)allocate the ring for `history_size` pairs, keeping the newest ones."""
        numel, dtype = self.d.size, self.d.dtype
        self.history_size = history_size
        dirs = np.zeros((history_size + 1, numel), dtype=dtype)
        stps = np.zeros_like(dirs)
        ro = np.zeros(history_size + 1, dtype=dtype)
        al = np.zeros(history_size, dtype=dtype)
        keep = 0
        if self.dirs.shape[0]:
            keep = min(self.count, history_size)
            rows = self.rows()[self.count - keep :]
            dirs[:keep], stps[:keep], ro[:keep] = self.dirs[rows], self.stps[rows], self.ro[rows]
            if self.al_set is not None:
                self.al_set = min(self.al_set, history_size)
                al[: self.al_set] = self.al[: self.al_set]
        self.dirs, self.stps, self.ro, self.al = dirs, stps, ro, al
        self.head, self.count = 0, keep

    def rows(self) -> Array:
        """The ring rows of the kept pairs, oldest first."""
        return (self.head + np.arange(self.count)) % self.dirs.shape[0]

    def as_state(self, snapshot: bool) -> dict[str, Any]:
        """torch's state entry of the first parameter (copies when `snapshot`, else live views)."""
        take = (lambda a: a.copy()) if snapshot else (lambda a: a)
        rows = [int(r) for r in self.rows()]
        state: dict[str, Any] = {"func_evals": self.func_evals, "n_iter": self.n_iter}
        al: list[Any] | None = None
        if self.al_set is not None:
            al = [take(self.al[i : i + 1].reshape(())) for i in range(self.al_set)]
            al += [None] * (self.history_size - self.al_set)
            if self.al_first:
                state["al"] = al
        if self.has_memory:
            h_diag = self.h_diag if isinstance(self.h_diag, int) else np.asarray(self.h_diag)
            state.update(
                d=take(self.d),
                t=float(self.t),
                old_dirs=[take(self.dirs[r]) for r in rows],
                old_stps=[take(self.stps[r]) for r in rows],
                ro=[take(self.ro[r : r + 1].reshape(())) for r in rows],
                H_diag=h_diag,
                prev_flat_grad=take(self.prev_flat_grad),
                prev_loss=self.prev_loss,
            )
        if al is not None and not self.al_first:
            state["al"] = al
        return state


def _count(value: Any, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return int(value)


def _number(value: Any, what: str) -> float:
    array = np.asarray(value)
    if array.size != 1 or array.dtype.kind not in "fiu":
        raise ValueError(f"{what} must be one real number, got {value!r}")
    return float(array.reshape(()))


def _parse_memory(
    param_state: Mapping[str, Any], numel: int, dtype: np.dtype[Any], hyper: ParamGroup
) -> _Memory:
    """A `_Memory` built from a loaded state entry, after checking every field."""
    where = "loaded LBFGS state"
    allowed = {"func_evals", "n_iter", "al", *_MEMORY_KEYS}
    unknown = sorted(map(str, set(param_state) - allowed))
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown}; LBFGS keeps {sorted(allowed)}")
    missing = [key for key in ("func_evals", "n_iter") if key not in param_state]
    present = [key for key in _MEMORY_KEYS if key in param_state]
    if present or _count(param_state.get("n_iter", 0), f"{where}: 'n_iter'") > 0:
        missing += [key for key in _MEMORY_KEYS if key not in param_state]
    if missing:
        raise ValueError(f"{where} lacks {missing}")
    history = int(hyper["history_size"])
    memory = _Memory(numel, dtype, history)
    memory.func_evals = _count(param_state["func_evals"], f"{where}: 'func_evals'")
    memory.n_iter = _count(param_state["n_iter"], f"{where}: 'n_iter'")

    def vector(value: Any, what: str) -> Array:
        array = np.asarray(value)
        if array.shape != (numel,) or array.dtype != dtype:
            raise ValueError(
                f"{where}: {what} must be a vector of {numel} {dtype} values, "
                f"got shape {array.shape} and dtype {array.dtype}"
            )
        return array

    if present:
        memory.has_memory = True
        memory.d[:] = vector(param_state["d"], "'d'")
        memory.prev_flat_grad[:] = vector(param_state["prev_flat_grad"], "'prev_flat_grad'")
        memory.t = _number(param_state["t"], f"{where}: 't'")
        memory.prev_loss = _number(param_state["prev_loss"], f"{where}: 'prev_loss'")
        h_diag = param_state["H_diag"]
        memory.h_diag = (
            h_diag if isinstance(h_diag, int) else dtype.type(_number(h_diag, f"{where}: 'H_diag'"))
        )
        lists = [param_state[key] for key in ("old_dirs", "old_stps", "ro")]
        if (
            not all(isinstance(item, (list, tuple)) for item in lists)
            or len({len(item) for item in lists}) != 1
        ):
            raise ValueError(f"{where}: 'old_dirs', 'old_stps' and 'ro' must be lists of one length")
        count = len(lists[0])
        if count > history:
            raise ValueError(f"{where} holds {count} pairs, more than history_size={history}")
        for i in range(count):
            memory.dirs[i] = vector(lists[0][i], f"old_dirs[{i}]")
            memory.stps[i] = vector(lists[1][i], f"old_stps[{i}]")
            memory.ro[i] = _number(lists[2][i], f"{where}: ro[{i}]")
        memory.count = count
    if "al" in param_state:
        al = param_state["al"]
        if not isinstance(al, (list, tuple)) or len(al) != history:
            raise ValueError(f"{where}: 'al' must be a list of history_size={history} entries, got {al!r}")
        set_count = sum(1 for item in al if item is not None)
        if any(item is None for item in al[:set_count]):
            raise ValueError(f"{where}: 'al' must hold numbers first, then None")
        memory.al[:set_count] = [_number(item, f"{where}: al[{i}]") for i, item in enumerate(al[:set_count])]
        memory.al_set = set_count
        keys = list(param_state)
        memory.al_first = not present or keys.index("al") < keys.index("d")
    return memory


# ----------------------------------------------------------------------------- optimizer
class LBFGS(Optimizer):
    """L-BFGS over all parameters as one vector x, as `torch.optim.LBFGS` (one parameter group).

    Each `step(closure)` runs up to `max_iter` iterations (`max_eval` closure calls)::

        d = −g                                    on the very first iteration, else
        s = t d,  y = g − g_prev;  keep (s, y, ρ = 1/yᵀs) if yᵀs > 1e-10 (the newest history_size),
            H₀ = yᵀs / yᵀy;  d = −H g by the two-loop recursion
        t = lr · min(1, 1/‖g‖₁) the very first iteration, else lr;  stop if gᵀd > −tolerance_change
        x ← x + t d   (t from a strong-Wolfe line search when line_search_fn="strong_wolfe")

    and stops early when max |g| ≤ tolerance_grad, max |t d| ≤ tolerance_change or the loss
    changed by less than tolerance_change.

    Args:
        params: iterable of ExTensors (one dtype), or a list holding one group dict.
        lr: learning rate, the step length scale (default 1).
        max_iter: iterations per step (default 20).
        max_eval: closure evaluations per step (default ``max_iter * 5 // 4``).
        tolerance_grad: stop when max |∇f| is at most this (default 1e-7).
        tolerance_change: stop when the step or loss change is below this (default 1e-9).
        history_size: number of (s, y) pairs kept (default 100).
        line_search_fn: None (fixed step t) or "strong_wolfe".

    State (``state[params[0]]``, as torch): func_evals, n_iter, al, d, t, old_dirs, old_stps,
    ro, H_diag, prev_flat_grad, prev_loss. Unlike torch, line_search_fn and max_iter/max_eval/
    history_size are checked at construction (integers ≥ 1), a second group is refused by
    `add_param_group`, and parameters must share one dtype.
    """

    hyperparameters: ClassVar[Rules] = (
        Check("lr >= 0", "learning rate"),
        Integer("max_iter", minimum=1),
        Integer("max_eval", minimum=1),
        Real("tolerance_grad"),
        Real("tolerance_change"),
        Integer("history_size", minimum=1),
        _line_search_rule,
    )
    step_in_state: ClassVar[bool] = False
    requires_closure: ClassVar[bool] = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
    ) -> None:
        if max_eval is None and isinstance(max_iter, numbers.Integral) and not isinstance(max_iter, bool):
            max_eval = max_iter * 5 // 4
        defaults = {
            "lr": lr,
            "max_iter": max_iter,
            "max_eval": max_eval,
            "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change,
            "history_size": history_size,
            "line_search_fn": line_search_fn,
        }
        super().__init__(params, defaults)
        self._params: list[ExTensor] = self.param_groups[0]["params"]
        self._memory: _Memory | None = None
        self._loaded: _Memory | None = None

    def _prepare_group(self, param_group: Any, position: int, seen: set[int]) -> ParamGroup:
        if position > 0:
            raise ValueError(_GROUPS_MESSAGE)
        group = super()._prepare_group(param_group, position, seen)
        dtypes = sorted({str(p.dtype) for p in group["params"]})
        if len(dtypes) > 1:
            raise TypeError(f"LBFGS optimizes parameters of one dtype as one vector, got dtypes {dtypes}")
        return group

    @property
    def _pack(self) -> _Pack:
        return self._packs[0][0]

    def _mark_state(self, has_state: bool) -> None:
        """Make the first parameter appear in `state` (torch keeps the global state there)."""
        pack, index = self._where[self._params[0]]
        pack.steps[index] = 1.0 if has_state else 0.0

    def _param_state(self, param: ExTensor, snapshot: bool) -> dict[str, Any]:
        if param is not self._params[0] or self._memory is None:
            return {}
        return self._memory.as_state(snapshot)

    def _check_loaded_state(
        self, param_id: Any, param: ExTensor, hyper: ParamGroup, param_state: Any
    ) -> tuple[float, dict[str, Array]] | None:
        if not isinstance(param_state, Mapping):
            raise TypeError(
                f"loaded state of parameter {param_id!r} must be a dict, got {type(param_state).__name__}"
            )
        if not param_state:
            return None
        if param is not self._params[0]:
            raise ValueError(
                f"the loaded state has an entry for parameter {param_id!r}; LBFGS keeps its whole state "
                "in the first parameter's entry"
            )
        buffer = self._pack.buffer
        self._loaded = _parse_memory(param_state, buffer.numel, buffer.dtype, hyper)
        return 1.0, {}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a `state_dict()` (ours, or torch's with tensors); validated before anything is written."""
        self._loaded = None
        try:
            super().load_state_dict(state_dict)
            self._memory = self._loaded
        finally:
            self._loaded = None

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Run up to max_iter L-BFGS iterations; return the closure's first loss (as torch).

        Args:
            closure: zeroes the gradients, evaluates the loss, back-propagates and returns the
                loss (a number or a one-element tensor/array). Required; it is called several times.
        """
        if closure is None or not callable(closure):
            raise TypeError(
                f"LBFGS.step needs a closure that evaluates the model and returns its loss, got {closure!r}"
            )
        self._check_packed()
        self._opt_called = True
        group = self.param_groups[0]
        self._validate_group(group)
        lr, max_iter, max_eval = float(group["lr"]), int(group["max_iter"]), int(group["max_eval"])
        tolerance_grad, tolerance_change = float(group["tolerance_grad"]), float(group["tolerance_change"])
        line_search, history_size = group["line_search_fn"], int(group["history_size"])
        buffer = self._pack.buffer
        scalar = buffer.dtype.type
        x = buffer.data

        if self._memory is None:
            self._memory = _Memory(buffer.numel, buffer.dtype, history_size)
            self._mark_state(True)
        mem = self._memory
        if mem.history_size != history_size:
            mem.resize(history_size)

        def evaluate() -> tuple[Any, float]:
            result = closure()
            try:
                loss = float(result)
            except (TypeError, ValueError):
                raise TypeError(
                    f"the closure must return the loss as a number or a one-element tensor, got {result!r}"
                ) from None
            return result, loss

        def gather(out: Array) -> tuple[Any, float]:
            buffer.settle()  # a clip inside the closure is deferred: apply it before reading
            return _gather(buffer.grad, buffer.present, buffer.offsets, out)

        orig_loss, loss = evaluate()
        current_evals = 1
        mem.func_evals += 1
        flat_grad = mem.grad
        grad_max, grad_sum = gather(flat_grad)
        if grad_max <= tolerance_grad:
            return orig_loss

        d, t, h_diag, prev_loss = mem.d, mem.t, mem.h_diag, mem.prev_loss
        had_memory = mem.has_memory  # torch writes d, t, ... into its state dict at the end of a step
        if line_search is not None and mem.x_init.size != x.size:
            mem.x_init = np.empty_like(x)
        x_init = mem.x_init

        def along(step: Any) -> tuple[float, Array, Any]:
            """(f, g, gᵀd) at x_init + step · d; the parameters are put back to x_init."""
            _axpy(x, scalar(step), d)
            value = evaluate()[1]
            gradient = np.empty_like(x)
            gather(gradient)
            np.copyto(x, x_init)
            return value, gradient, scalar(_dot(gradient, d))

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            mem.n_iter += 1
            # ---- direction
            if mem.n_iter == 1:
                np.negative(flat_grad, out=d)
                mem.head = mem.count = 0
                h_diag = 1
            else:
                spare = (mem.head + mem.count) % mem.dirs.shape[0]
                ys, yy = _new_pair(
                    flat_grad, mem.prev_flat_grad, d, scalar(t), mem.dirs[spare], mem.stps[spare]
                )
                ys = scalar(ys)
                if ys > 1e-10:
                    if mem.count == history_size:
                        mem.head = (mem.head + 1) % mem.dirs.shape[0]
                        mem.count -= 1
                    mem.count += 1
                    mem.ro[spare] = 1.0 / ys
                    h_diag = ys / scalar(yy)
                if mem.al_set is None:
                    mem.al_set, mem.al_first = 0, not had_memory
                mem.al_set = max(mem.al_set, mem.count)
                _two_loop(
                    flat_grad, mem.dirs, mem.stps, mem.ro, mem.head, mem.count, scalar(h_diag), mem.al, d
                )
            np.copyto(mem.prev_flat_grad, flat_grad)
            prev_loss = loss
            mem.has_memory = True
            # ---- step length
            t = min(1.0, 1.0 / scalar(grad_sum)) * lr if mem.n_iter == 1 else lr
            gtd = scalar(_dot(flat_grad, d))
            if gtd > -tolerance_change:
                break
            ls_func_evals = 0
            if line_search is not None:
                np.copyto(x_init, x)
                with np.errstate(all="ignore"):
                    loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                        along, t, d, loss, flat_grad, gtd, max_ls=max_eval - current_evals
                    )
                _axpy(x, scalar(t), d)
                opt_cond = _abs_max(flat_grad, scalar(1)) <= tolerance_grad
            else:
                _axpy(x, scalar(t), d)
                opt_cond = False
                if n_iter != max_iter:  # no re-evaluation after the last iteration (as torch)
                    loss = evaluate()[1]
                    flat_grad = mem.grad
                    grad_max, grad_sum = gather(flat_grad)
                    opt_cond = grad_max <= tolerance_grad
                    ls_func_evals = 1
            current_evals += ls_func_evals
            mem.func_evals += ls_func_evals
            # ---- stopping tests
            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if _abs_max(d, scalar(t)) <= tolerance_change or abs(loss - prev_loss) < tolerance_change:
                break
        mem.t, mem.h_diag, mem.prev_loss = t, h_diag, prev_loss
        return orig_loss
