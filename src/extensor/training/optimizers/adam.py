"""Adam and AdamW: adaptive moment estimation, with L2 or decoupled weight decay, one kernel.

Kingma & Ba, "Adam: A Method for Stochastic Optimization" (ICLR 2015); AMSGrad from Reddi,
Kale & Kumar, "On the Convergence of Adam and Beyond" (ICLR 2018); decoupled weight decay from
Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019).

The math the Adam family shares lives here as inlined element functions: `adam_gradient` (sign,
decoupled and L2 weight decay; also ADOPT's) and `adam_moments` (that plus both moments; also
NAdam's and RAdam's), with `moment_coefficients` computing their scalars. Each algorithm's kernel
is one loop calling them and then its own parameter update, written in the order of torch's
operations so that float32 rounds as torch does; folding the four updates into one kernel with
extra coefficients would change that order (NAdam divides v by 1 - β2^t before the square root,
RAdam multiplies by a reciprocal) and so torch's float32 results.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np
from numba import njit, prange

from extensor.core.tensor import Array
from extensor.training.flat import sized_kernel
from extensor.training.optimizers.compact import BLOCK_SIZE, SIGNED, UNSIGNED
from extensor.training.optimizers.compact_state import (
    check_state_dtype,
    chunk_blocks,
    chunk_count,
    load_block,
    store_block,
)
from extensor.training.optimizers.declare import Check, Flag, Numbers, Rules, State
from extensor.training.optimizers.elementwise import lerp, nan_maximum
from extensor.training.optimizers.optimizer import Optimizer, ParamGroup, Run, Window, _Pack

__all__ = [
    "ADAM_CHECKS",
    "Adam",
    "AdamW",
    "adam_gradient",
    "adam_kernel",
    "adam_moments",
    "moment_coefficients",
]


@njit(cache=True, inline="always")
def adam_gradient(i: int, param: Array, grad: Array, sign: Any, decay: Any, l2: Any) -> tuple[Any, Any]:
    """The gradient and weight decay of element `i` as the Adam family applies them: ``(p, g)``.

    ``g = sign·g`` (−1 to maximise), ``p = p·decay`` (decoupled decay, ``1 - lr·wd``, else 1) and
    ``g = g + l2·p`` (L2 decay), the last only when ``l2 ≠ 0`` as torch skips it.
    """
    g = sign * grad[i]
    p = param[i] * decay
    if l2 != 0:  # as torch, no term at all without L2 decay: 0 · inf would turn an inf into NaN
        g = g + l2 * p
    return p, g


@njit(cache=True, inline="always")
def adam_moments(
    i: int,
    param: Array,
    grad: Array,
    exp_avg: Array,
    exp_avg_sq: Array,
    sign: Any,
    decay: Any,
    l2: Any,
    beta1_weight: Any,
    one_minus_beta1_weight: Any,
    beta2: Any,
    one_minus_beta2: Any,
) -> tuple[Any, Any, Any, Any]:
    """What Adam, AdamW, NAdam and RAdam share, for element `i`: the gradient and both moments.

    As torch: ``g = sign·g``, ``p = p·decay`` (decoupled decay), ``g = g + l2·p`` (only when
    ``l2 ≠ 0``), ``m = lerp(m, g, 1 - β1)``, ``v = β2·v + (1 - β2)·g·g``. Stores m and v and
    returns ``(p, g, m, v)``; each kernel then finishes the element with its own update of p.
    Inlined, so a kernel calling it compiles to one loop with no call or tuple left.
    """
    p, g = adam_gradient(i, param, grad, sign, decay, l2)
    m = lerp(exp_avg[i], g, beta1_weight, one_minus_beta1_weight)
    v = exp_avg_sq[i] * beta2 + one_minus_beta2 * g * g
    exp_avg[i] = m
    exp_avg_sq[i] = v
    return p, g, m, v


def moment_coefficients(group: ParamGroup, run: Run, decoupled: bool) -> tuple[Any, ...]:
    """The scalars `adam_moments` takes after the buffers, in the run's dtype, from `group`.

    ``(sign, decay, l2, 1 - β1, β1 in the element dtype, β2, 1 - β2)``: the options as torch applies
    them (``decay = 1 - lr·wd`` when `decoupled`, else ``l2 = wd``), computed in double precision
    and cast once.
    """
    lr = float(group["lr"])
    weight_decay = float(group["weight_decay"])
    beta1, beta2 = float(group["betas"][0]), float(group["betas"][1])
    beta1_weight = run.scalar(1 - beta1)
    return (
        run.gradient_sign(group["maximize"]),
        run.scalar(1 - lr * weight_decay if decoupled else 1.0),
        run.scalar(0.0 if decoupled else weight_decay),
        beta1_weight,
        run.scalar(1) - beta1_weight,
        run.scalar(beta2),
        run.scalar(1 - beta2),
    )


@njit(cache=True, inline="always")
def _adam_element(
    i: int,
    param: Array,
    grad: Array,
    exp_avg: Array,
    exp_avg_sq: Array,
    max_exp_avg_sq: Array,
    sign: Any,
    decay: Any,
    l2: Any,
    beta1_weight: Any,
    one_minus_beta1_weight: Any,
    beta2: Any,
    one_minus_beta2: Any,
    neg_step_size: Any,
    bias_correction2_sqrt: Any,
    eps: Any,
    amsgrad: bool,
) -> None:
    p, _, m, v = adam_moments(
        i, param, grad, exp_avg, exp_avg_sq, sign, decay, l2, beta1_weight, one_minus_beta1_weight, beta2,
        one_minus_beta2,
    )  # fmt: skip
    if amsgrad:
        v = nan_maximum(max_exp_avg_sq[i], v)
        max_exp_avg_sq[i] = v
    denom = np.sqrt(v) / bias_correction2_sqrt + eps
    param[i] = p + neg_step_size * m / denom


@sized_kernel(fastmath=False)
def adam_kernel(
    param: Array,
    grad: Array,
    exp_avg: Array,
    exp_avg_sq: Array,
    max_exp_avg_sq: Array,
    sign: Any,
    decay: Any,
    l2: Any,
    beta1_weight: Any,
    one_minus_beta1_weight: Any,
    beta2: Any,
    one_minus_beta2: Any,
    neg_step_size: Any,
    bias_correction2_sqrt: Any,
    eps: Any,
) -> None:
    """One Adam/AdamW step over a flat run of parameters, in place, in the parameters' dtype.

    Per element, as torch.optim.Adam (``sign = -1`` to maximise; ``decay = 1 - lr·wd`` for
    AdamW, else 1; ``l2 = wd`` for Adam, else 0; ``step_size = lr / (1 - β1^t)``)::

        g = sign · g
        p = p · decay                      (decoupled weight decay)
        g = g + l2 · p                     (L2 penalty, only when l2 ≠ 0)
        m = lerp(m, g, 1 - β1)
        v = β2 · v + (1 - β2) · g · g
        v̂ = max(v̂, v) if amsgrad else v   (max of the raw second moment)
        p = p - step_size · m / (sqrt(v̂) / sqrt(1 - β2^t) + eps)

    AMSGrad is on when `max_exp_avg_sq` is not empty. Options are coefficients (±1 and the
    decay factor, 1 without decay, multiply as torch does, also infinities), except the L2 term,
    which is skipped when ``l2 = 0`` as torch skips it; that branch is loop-invariant (LLVM
    unswitches it or makes it a select). AMSGrad selects one of two loops, so that each loop
    vectorises.
    """
    n = param.size
    if max_exp_avg_sq.size == 0:
        for i in prange(n):
            _adam_element(
                i, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, sign, decay, l2, beta1_weight,
                one_minus_beta1_weight, beta2, one_minus_beta2, neg_step_size, bias_correction2_sqrt, eps,
                False,
            )  # fmt: skip
    else:
        for i in prange(n):
            _adam_element(
                i, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, sign, decay, l2, beta1_weight,
                one_minus_beta1_weight, beta2, one_minus_beta2, neg_step_size, bias_correction2_sqrt, eps,
                True,
            )  # fmt: skip


@sized_kernel(fastmath=False)
def adam_compact_kernel(
    param: Array,
    grad: Array,
    exp_avg: tuple[Array, Array, Array, Array],
    exp_avg_sq: tuple[Array, Array, Array, Array],
    blocks: tuple[Array, Array, Array, int, int, int],
    bf16: bool,
    signed: Any,
    unsigned: Any,
    coefficients: tuple[Any, ...],
) -> None:
    """`adam_kernel` with m and v stored compactly (`compact_state`): per block, decode m and v into
    float32 scratch, apply Adam's element update exactly as the float32 kernel does, encode them.

    ``blocks = (lo, hi, slot, first, last, base)``: the block table, the range of blocks to update
    and the element of the flat buffer where `param` and `grad` start (`compact_state.CompactRun`).
    `signed` / `unsigned` are the int8 maps of m and v. In parallel over chunks of blocks, each
    with its own scratch (allocated once per chunk, not per block).
    """
    lo, hi, slot, _, _, base = blocks
    sign, decay, l2, b1w, omb1w, beta2, omb2, neg_step_size, bc2_sqrt, eps = coefficients
    n_chunks = chunk_count(blocks)
    no_max = np.empty(0, dtype=param.dtype)
    for chunk in prange(n_chunks):
        m = np.empty(BLOCK_SIZE, dtype=np.float32)
        v = np.empty(BLOCK_SIZE, dtype=np.float32)
        for j in range(*chunk_blocks(blocks, chunk, n_chunks)):
            a, b, s = lo[j], hi[j], slot[j]
            load_block(exp_avg, bf16, a, b, s, signed, m)
            load_block(exp_avg_sq, bf16, a, b, s, unsigned, v)
            p, g = param[a - base : b - base], grad[a - base : b - base]
            for i in range(b - a):
                _adam_element(
                    i, p, g, m, v, no_max, sign, decay, l2, b1w, omb1w, beta2, omb2, neg_step_size, bc2_sqrt,
                    eps, False,
                )  # fmt: skip
            store_block(exp_avg, bf16, a, b, s, signed, m)
            store_block(exp_avg_sq, bf16, a, b, s, unsigned, v)


#: torch's checks of the Adam family's shared arguments, in torch's order: Adam, AdamW, NAdam, RAdam,
#: Adamax, ADOPT and LAMB each add their own.
ADAM_CHECKS: Rules = (
    Check("lr >= 0", "learning rate"),
    Check("eps >= 0", "epsilon value"),
    Numbers("betas", 2),
    Check("0 <= betas[0] < 1", "beta parameter at index 0"),
    Check("0 <= betas[1] < 1", "beta parameter at index 1"),
    Check("weight_decay >= 0", "weight_decay value"),
)


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), identical to `torch.optim.Adam`.

    With ``g = ∇f(θ)`` (negated when `maximize`), at step t of a parameter::

        g ← g + λ θ                          (weight_decay λ, L2 coupled into g)
        m ← β1 m + (1 − β1) g
        v ← β2 v + (1 − β2) g²
        v̂ ← max(v̂, v) with amsgrad, else v
        θ ← θ − γ / (1 − β1^t) · m / (√v̂ / √(1 − β2^t) + ε)

    Args:
        params: iterable of ExTensors or of parameter-group dicts.
        lr: learning rate γ (default 1e-3).
        betas: (β1, β2), each in [0, 1) (default (0.9, 0.999)).
        eps: ε added to the denominator (default 1e-8).
        weight_decay: λ (default 0).
        amsgrad: use AMSGrad's running maximum of v (keyword-only).
        maximize: maximise the objective instead (keyword-only).
        state_dtype: how m and v are stored (keyword-only): None (the parameters' dtype, as
            torch), ``"bfloat16"`` (2 bytes each) or ``"int8"`` (block-wise 8-bit, Dettmers et
            al. 2022; tensors under 4096 elements stay float32). Compact state needs float32
            parameters and no amsgrad; the update is computed in float32 (`compact_state`).

    State per parameter: ``step``, ``exp_avg``, ``exp_avg_sq`` (and ``max_exp_avg_sq``); with a
    compact `state_dtype` in its stored form (`compact_state`).
    """

    fuses_grad_scale = True  # a deferred clip rides on the sign (`Run.gradient_sign`)
    hyperparameters: ClassVar[Rules] = (*ADAM_CHECKS, Flag("amsgrad"), Flag("maximize"))
    buffers = ("exp_avg", "exp_avg_sq", State("max_exp_avg_sq", when="amsgrad"))
    #: AdamW decays the weights directly (θ ← θ(1 − γλ)) instead of adding λθ to the gradient.
    decoupled_weight_decay: ClassVar[bool] = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        amsgrad: bool = False,
        maximize: bool = False,
        state_dtype: str | None = None,
    ) -> None:
        self.state_dtype = check_state_dtype(state_dtype)
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _validate_group(self, group: Mapping[str, Any]) -> None:
        super()._validate_group(group)
        if self.state_dtype is not None and group.get("amsgrad"):
            raise ValueError(
                f"amsgrad keeps a running maximum that state_dtype={self.state_dtype!r} does not store"
            )

    def _step_pack(
        self, group: ParamGroup, pack: _Pack, window: Window | None = None, sums: Array | None = None
    ) -> None:
        if pack.compact is not None:  # a group edited in place after validation: refuse before any work
            self._validate_group(group)
        super()._step_pack(group, pack, window, sums)

    def _update(self, group: ParamGroup, run: Run) -> None:
        betas = group["betas"]
        # per-step scalars in Python double precision, as torch computes them, then cast once
        bias_correction1 = 1 - float(betas[0]) ** run.step
        bias_correction2 = 1 - float(betas[1]) ** run.step
        step_size = float(group["lr"]) / bias_correction1
        if run.compact is not None:
            compact = run.compact
            adam_compact_kernel(
                run.param,
                run.grad,
                compact.store.state("exp_avg", signed=True),
                compact.store.state("exp_avg_sq", signed=False),
                compact.blocks,
                compact.store.bf16,
                SIGNED,
                UNSIGNED,
                (
                    *moment_coefficients(group, run, self.decoupled_weight_decay),
                    run.scalar(-step_size),
                    run.scalar(bias_correction2**0.5),
                    run.scalar(group["eps"]),
                ),
            )
            return
        adam_kernel(
            run.param,
            run.grad,
            run.buffer("exp_avg"),
            run.buffer("exp_avg_sq"),
            run.buffer("max_exp_avg_sq"),  # empty without amsgrad
            *moment_coefficients(group, run, self.decoupled_weight_decay),
            run.scalar(-step_size),
            run.scalar(bias_correction2**0.5),
            run.scalar(group["eps"]),
        )


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay, as `torch.optim.AdamW`.

    Identical to `Adam` except the decay: before the moment updates, ``θ ← θ (1 − γλ)``, and
    λθ is not added to the gradient (so it never enters m or v).

    Args: as `Adam`, with ``weight_decay`` defaulting to 0.01.
    """

    decoupled_weight_decay: ClassVar[bool] = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        *,
        amsgrad: bool = False,
        maximize: bool = False,
        state_dtype: str | None = None,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad=amsgrad, maximize=maximize, state_dtype=state_dtype
        )
