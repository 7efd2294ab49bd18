"""NAdam: Adam with Nesterov momentum and a warming momentum schedule, identical to `torch.optim.NAdam`.

Dozat, "Incorporating Nesterov Momentum into Adam" (ICLR 2016 workshop); decoupled weight decay
as in Loshchilov & Hutter (ICLR 2019). The moments are Adam's (`adam_moments`, shared with
Adam, AdamW and RAdam); only the parameter update differs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np
from numba import prange

from extensor.core.tensor import Array, ExTensor
from extensor.training.flat import sized_kernel
from extensor.training.optimizers.adam import ADAM_CHECKS, adam_moments, moment_coefficients
from extensor.training.optimizers.declare import Check, Flag, Rules
from extensor.training.optimizers.optimizer import (
    Optimizer,
    ParamGroup,
    Run,
    Window,
    _all_present_and_equal,
    _Pack,
)

__all__ = ["NAdam", "nadam_kernel"]


@sized_kernel(fastmath=False)
def nadam_kernel(
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
    bias_correction2: Any,
    eps: Any,
    grad_coefficient: Any,
    avg_coefficient: Any,
) -> None:
    """One NAdam step over a flat run of parameters sharing μ's product, in place.

    Per element, after Adam's moments (`adam_moments`), as torch's two ``addcdiv_``::

        d = sqrt(v / (1 - β2^t)) + eps
        p = p + grad_coefficient · g / d         (grad_coefficient = -lr (1 - μ_t) / (1 - Π μ_t))
        p = p + avg_coefficient · m / d          (avg_coefficient = -lr μ_{t+1} / (1 - Π μ_{t+1}))
    """
    for i in prange(param.size):
        p, g, m, v = adam_moments(
            i, param, grad, exp_avg, exp_avg_sq, sign, decay, l2, beta1_weight, one_minus_beta1_weight, beta2,
            one_minus_beta2,
        )  # fmt: skip
        denom = np.sqrt(v / bias_correction2) + eps
        p = p + grad_coefficient * g / denom
        param[i] = p + avg_coefficient * m / denom


def _momentum(beta1: float, momentum_decay: float, step: float) -> float:
    """μ_t = β1 (1 - ½ · 0.96^(t ψ)), in double precision as torch computes it."""
    return beta1 * (1.0 - 0.5 * (0.96 ** (step * momentum_decay)))


class NAdam(Optimizer):
    """NAdam (Dozat, 2016), identical to `torch.optim.NAdam`.

    With ``g = ∇f(θ)`` (negated when `maximize`), at step t of a parameter::

        θ ← θ (1 − γλ) if decoupled_weight_decay, else g ← g + λ θ
        μ_t = β1 (1 − ½ · 0.96^(t ψ)),  μ_{t+1} likewise,  Π_t = Π_{t−1} μ_t   (mu_product)
        m ← β1 m + (1 − β1) g
        v ← β2 v + (1 − β2) g²
        θ ← θ − γ (1 − μ_t) / (1 − Π_t) · g / d − γ μ_{t+1} / (1 − Π_t μ_{t+1}) · m / d,
        d = √(v / (1 − β2^t)) + ε

    Args:
        params: iterable of ExTensors or of parameter-group dicts.
        lr: learning rate γ (default 2e-3).
        betas: (β1, β2), each in [0, 1) (default (0.9, 0.999)).
        eps: ε added to the denominator (default 1e-8).
        weight_decay: λ (default 0).
        momentum_decay: ψ (default 4e-3).
        decoupled_weight_decay: decay the weights directly as AdamW does ("NAdamW").
        maximize: maximise the objective instead (keyword-only).

    State per parameter, in torch's order: ``step``, ``mu_product`` (a 0-d float32 array, the
    running product Π of μ, kept per tensor as torch does), ``exp_avg``, ``exp_avg_sq``.
    """

    fuses_grad_scale = True  # a deferred clip rides on the sign (`Run.gradient_sign`)
    hyperparameters: ClassVar[Rules] = (
        *ADAM_CHECKS,
        Check("momentum_decay >= 0", "momentum_decay value"),
        Flag("decoupled_weight_decay"),
        Flag("maximize"),
    )
    buffers = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        #: per pack, each tensor's μ product (float32 as torch's 0-d state tensor)
        self._mu_products: dict[_Pack, Array] = {}
        self._stepping: _Pack | None = None
        self._loading: dict[ExTensor, np.float32] = {}
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum_decay": momentum_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _products(self, pack: _Pack) -> Array:
        products = self._mu_products.get(pack)
        if products is None:
            products = self._mu_products[pack] = np.ones(len(pack.buffer.tensors), dtype=np.float32)
        return products

    def _step_pack(
        self, group: ParamGroup, pack: _Pack, window: Window | None = None, sums: Array | None = None
    ) -> None:
        # Π ← Π μ_t for every tensor stepped now (those with a gradient), as torch's
        # ``mu_product *= mu`` in float32, before the runs' updates read it
        products = self._products(pack)
        present, steps = pack.buffer.present, pack.steps
        beta1, momentum_decay = float(group["betas"][0]), float(group["momentum_decay"])
        if _all_present_and_equal(present, steps):
            products *= np.float32(_momentum(beta1, momentum_decay, float(steps[0] + np.float32(1))))
        else:
            for count in np.unique(steps[present]):
                mu = _momentum(beta1, momentum_decay, float(count + np.float32(1)))
                products[present & (steps == count)] *= np.float32(mu)
        self._stepping = pack
        try:
            super()._step_pack(group, pack, window, sums)
        finally:
            self._stepping = None

    def _update(self, group: ParamGroup, run: Run) -> None:
        assert self._stepping is not None, "NAdam updates runs only from _step_pack"
        offsets = self._stepping.buffer.offsets
        # the pack's tensors holding the run's elements [lo, hi), and their bounds in the run
        lo, hi = int(run._offsets[0]), int(run._offsets[-1])
        first = int(np.searchsorted(offsets, lo, side="right")) - 1
        last = int(np.searchsorted(offsets, hi, side="left"))
        products = self._products(self._stepping)[first:last]

        lr = float(group["lr"])
        beta2 = float(group["betas"][1])
        beta1, momentum_decay = float(group["betas"][0]), float(group["momentum_decay"])
        mu = _momentum(beta1, momentum_decay, run.step)
        mu_next = _momentum(beta1, momentum_decay, run.step + 1)
        shared = (
            *moment_coefficients(group, run, bool(group["decoupled_weight_decay"])),
            run.scalar(1 - beta2**run.step),
            run.scalar(group["eps"]),
        )
        names = ("exp_avg", "exp_avg_sq")
        if (products == products[0]).all():  # the common case: one product, one call
            stretches = [(0, run.param.size, float(products[0]))]
        else:  # tensors whose products differ (betas changed, a loaded state): one call per stretch
            bounds = np.clip(offsets[first : last + 1], lo, hi) - lo
            change = np.flatnonzero(products[1:] != products[:-1]) + 1
            edges = [0, *change.tolist(), len(products)]
            stretches = [
                (int(bounds[a]), int(bounds[b]), float(products[a])) for a, b in itertools.pairwise(edges)
            ]
        for start, stop, product in stretches:
            product_next = product * mu_next
            whole = start == 0 and stop == run.param.size
            nadam_kernel(
                run.param if whole else run.param[start:stop],
                run.grad if whole else run.grad[start:stop],
                *(run.state[name] if whole else run.state[name][start:stop] for name in names),
                *shared,
                run.scalar(-lr * (1.0 - mu) / (1.0 - product)),
                run.scalar((-lr * mu_next) / (1.0 - product_next)),
            )

    # ----------------------------------------------------------------- mu_product in the state
    def _param_state(self, param: ExTensor, snapshot: bool) -> dict[str, Any]:
        state = super()._param_state(param, snapshot)
        if not state:
            return state
        pack, index = self._where[param]
        product = self._products(pack)[index : index + 1].reshape(())
        result: dict[str, Any] = {
            "step": state.pop("step"),
            "mu_product": product.copy() if snapshot else product,
        }
        result.update(state)
        return result

    def _check_loaded_state(
        self, param_id: Any, param: ExTensor, hyper: ParamGroup, param_state: Any
    ) -> tuple[float, dict[str, Array]] | None:
        if isinstance(param_state, Mapping) and param_state:
            where = f"loaded state of parameter {param_id!r}"
            if "mu_product" not in param_state:
                raise ValueError(f"{where} lacks ['mu_product']")
            raw = np.asarray(param_state["mu_product"])
            if raw.size != 1 or raw.dtype.kind not in "fiu" or not np.isfinite(raw).all():
                raise ValueError(f"{where}: 'mu_product' must be one finite number, got {raw!r}")
            self._loading[param] = np.float32(raw.item())
            param_state = {key: value for key, value in param_state.items() if key != "mu_product"}
        return super()._check_loaded_state(param_id, param, hyper, param_state)

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a `state_dict()` (ours or torch's), ``mu_product`` included; validated before writing."""
        self._loading = {}
        try:
            super().load_state_dict(state_dict)
            loaded = self._loading
        finally:
            self._loading = {}
        for packs in self._packs:
            for pack in packs:
                products = self._products(pack)
                for index, param in enumerate(pack.buffer.tensors):
                    products[index] = loaded.get(param, np.float32(1))
