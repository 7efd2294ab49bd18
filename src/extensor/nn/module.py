"""`Module`: the base class of layers and models, with torch.nn.Module's registration semantics.

Assigning a `Parameter`, a `Module` or (after `register_buffer`) a buffer to an attribute registers
it; `named_parameters()`, `state_dict()` and friends walk the registrations in order, giving the
same dotted names as PyTorch for the same model (`0.weight`, `features.1.bias`, ...).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple, TypeVar

import numpy as np

from extensor.core.tensor import Array, ExTensor
from extensor.nn.parameter import Parameter

M = TypeVar("M", bound="Module")


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict(strict=False)` did not match: keys the model has but the state lacks,
    and keys the state has but the model lacks."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _check_name(kind: str, name: Any, owner: Module) -> None:
    if not isinstance(name, str):
        raise TypeError(f"{kind} name must be a string, got {type(name).__name__}")
    if name == "" or "." in name:
        raise ValueError(f'{kind} name must be non-empty and contain no ".", got {name!r}')
    if (
        hasattr(owner, name)
        and name not in owner._parameters
        and name not in owner._buffers
        and (name not in owner._modules)
    ):
        raise ValueError(f"cannot register {kind} {name!r}: attribute {name!r} already exists")


def _indent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    return "\n".join([lines[0]] + [" " * spaces + line for line in lines[1:]])


class Module:
    """Base class of every layer and model.

    Subclasses call `super().__init__()` first, assign their parameters, buffers and submodules as
    attributes, and implement `forward`. `module(x)` calls `module.forward(x)`.
    """

    training: bool
    _parameters: dict[str, Parameter | None]
    _buffers: dict[str, ExTensor | None]
    _non_persistent_buffers: set[str]
    _modules: dict[str, Module | None]

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", {})

    # ------------------------------------------------------------------ calling
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation of this module; subclasses override it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ registration
    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register `param` (a Parameter, or None for an absent one such as a disabled bias) as `name`."""
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameters before Module.__init__() is called")
        _check_name("parameter", name, self)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot register {type(param).__name__} as parameter {name!r} "
                "(a Parameter or None is expected)"
            )
        self._discard(name, "_parameters")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: ExTensor | Array | None, persistent: bool = True) -> None:
        """Register a non-learnable tensor (running statistics, ...) as `name`.

        Persistent buffers are part of `state_dict()`; arrays are wrapped in an ExTensor.
        """
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffers before Module.__init__() is called")
        _check_name("buffer", name, self)
        if isinstance(tensor, Parameter):
            raise TypeError(f"buffer {name!r} cannot be a Parameter; use register_parameter")
        if tensor is not None and not isinstance(tensor, (ExTensor, np.ndarray)):
            raise TypeError(
                f"cannot register {type(tensor).__name__} as buffer {name!r} "
                "(an ExTensor, array or None is expected)"
            )
        self._discard(name, "_buffers")
        self._buffers[name] = ExTensor(tensor) if isinstance(tensor, np.ndarray) else tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register `module` as the submodule `name`."""
        if "_modules" not in self.__dict__:
            raise AttributeError("cannot assign modules before Module.__init__() is called")
        _check_name("module", name, self)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._discard(name, "_modules")
        self._modules[name] = module

    register_module = add_module

    def _discard(self, name: str, keep: str) -> None:
        """Forget `name` in every registry but `keep` (re-registering in the same one keeps its position)."""
        self.__dict__.pop(name, None)
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry != keep:
                self.__dict__[registry].pop(name, None)
        if keep != "_buffers":
            self._non_persistent_buffers.discard(name)

    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        modules = self.__dict__.get("_modules")
        buffers = self.__dict__.get("_buffers")
        if isinstance(value, Parameter):
            self.__dict__.pop(name, None)  # an instance attribute of that name gives way, as in torch
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as parameter {name!r} "
                    "(a Parameter or None is expected)"
                )
            params[name] = None
        elif isinstance(value, Module):
            self.__dict__.pop(name, None)
            self.add_module(name, value)
        elif modules is not None and name in modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as child module {name!r} (a Module or None)"
                )
            modules[name] = None
        elif buffers is not None and name in buffers:
            if value is not None and not isinstance(value, ExTensor):
                raise TypeError(
                    f"cannot assign {type(value).__name__} as buffer {name!r} (an ExTensor or None)"
                )
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails: parameters, buffers and modules live in registries
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__[registry]
            if name in entries:
                del entries[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        return sorted(
            set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules)
        )

    # ------------------------------------------------------------------ traversal
    def named_modules(self, prefix: str = "", remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """This module and every submodule, depth first, with dotted names ('' for this one)."""
        yield from self._named_modules(set() if remove_duplicate else None, prefix)

    def _named_modules(self, seen: set[int] | None, prefix: str) -> Iterator[tuple[str, Module]]:
        if seen is not None:
            if id(self) in seen:
                return
            seen.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child._named_modules(seen, f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        """This module and every submodule, depth first."""
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The direct submodules with their names, in registration order."""
        seen: set[int] = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator[Module]:
        """The direct submodules, in registration order."""
        for _, child in self.named_children():
            yield child

    def _named_members(
        self, registry: str, prefix: str, recurse: bool, remove_duplicate: bool
    ) -> Iterator[tuple[str, Any]]:
        seen: set[int] = set()
        owners = self.named_modules(prefix, remove_duplicate) if recurse else iter([(prefix, self)])
        for owner_name, owner in owners:
            for name, member in owner.__dict__[registry].items():
                if member is None or (remove_duplicate and id(member) in seen):
                    continue
                seen.add(id(member))
                yield (f"{owner_name}.{name}" if owner_name else name), member

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) pairs in registration order; a shared parameter appears once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """The parameters in registration order (what an optimizer takes)."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, ExTensor]]:
        """(dotted name, buffer) pairs in registration order."""
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[ExTensor]:
        """The buffers in registration order."""
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def get_submodule(self, target: str) -> Module:
        """The submodule at dotted path `target` ('' is this module)."""
        module: Module = self
        if target == "":
            return module
        for part in target.split("."):
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(
                    f"{type(module).__name__} has no submodule {part!r} (looking up {target!r})"
                )
            module = child
        return module

    # ------------------------------------------------------------------ modes and gradients
    def train(self: M, mode: bool = True) -> M:
        """Set training mode (True) or evaluation mode (False) on this module and every submodule."""
        if not isinstance(mode, bool):
            raise ValueError(f"training mode is expected to be a bool, got {mode!r}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self: M) -> M:
        """Evaluation mode: `train(False)` (BatchNorm uses running statistics, Dropout is the identity)."""
        return self.train(False)

    def requires_grad_(self: M, requires_grad: bool = True) -> M:
        """Set `requires_grad` on every parameter."""
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (set_to_none=True, as torch) or fill it with zeros."""
        for param in self.parameters():
            grad = param.grad
            if grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                grad[...] = 0

    def apply(self: M, fn: Callable[[Module], Any]) -> M:
        """Call `fn` on every submodule (children first) and then on this module."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ dtype conversion
    def to(self: M, dtype: Any) -> M:
        """Convert the floating-point parameters and buffers to `dtype` (a floating dtype) in place.

        Parameters keep their identity (as in torch); convert before creating an optimizer, since a
        parameter bound to an optimizer's flat buffer cannot change dtype. The string 'cpu' is
        accepted and changes nothing (there is no other device).
        """
        if isinstance(dtype, str) and dtype == "cpu":
            return self
        try:
            target = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"to() expects a floating-point dtype or 'cpu', got {dtype!r}") from None
        if not np.issubdtype(target, np.floating):
            raise TypeError(f"to() expects a floating-point dtype, got {target}")
        params = list(self.parameters())
        bound = [name for name, p in self.named_parameters() if p.grad_slot is not None]
        if bound:
            raise RuntimeError(
                f"cannot convert parameters {bound} bound to an optimizer's flat buffer; convert the model "
                "before creating the optimizer"
            )
        for param in params:
            if np.issubdtype(param.dtype, np.floating):
                param._convert(target)
        for module in self.modules():
            for name, buffer in module._buffers.items():
                if buffer is not None and np.issubdtype(buffer.dtype, np.floating):
                    module._buffers[name] = ExTensor(
                        buffer.data.astype(target), requires_grad=buffer.requires_grad
                    )
        return self

    def double(self: M) -> M:
        """`to(float64)`."""
        return self.to(np.float64)

    def float(self: M) -> M:
        """`to(float32)`."""
        return self.to(np.float32)

    # ------------------------------------------------------------------ state
    def state_dict(self, prefix: str = "", keep_vars: bool = False) -> OrderedDict[str, Any]:
        """Every parameter and persistent buffer by dotted name, each module's own before its children's.

        Values are the NumPy arrays themselves (shared with the module, as torch's tensors are:
        copy them for a snapshot), or the ExTensors when `keep_vars`.
        """
        result: OrderedDict[str, Any] = OrderedDict()
        # like torch, a module reachable under two names is saved under both
        for owner_name, owner in self.named_modules(prefix.rstrip("."), remove_duplicate=False):
            head = f"{owner_name}." if owner_name else ""
            for name, param in owner._parameters.items():
                if param is not None:
                    result[head + name] = param if keep_vars else param.data
            for name, buffer in owner._buffers.items():
                if buffer is not None and name not in owner._non_persistent_buffers:
                    result[head + name] = buffer if keep_vars else buffer.data
        return result

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy the arrays of `state_dict` into the parameters and persistent buffers of the same names.

        Everything is checked before anything is written: with `strict`, missing and unexpected keys
        are errors; in every mode, each matched value must have the target's exact shape and dtype.
        On error nothing is changed. Values may be NumPy arrays, ExTensors or anything `numpy.asarray`
        takes. Returns the missing and unexpected keys.

        Raises:
            TypeError: `state_dict` is not a mapping.
            ValueError: listing every missing or unexpected key (strict), shape or dtype mismatch.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"load_state_dict expects a mapping of names to arrays, got {type(state_dict).__name__}"
            )
        targets = self.state_dict(keep_vars=True)
        missing = [key for key in targets if key not in state_dict]
        unexpected = [key for key in state_dict if key not in targets]
        problems: list[str] = []
        if strict:
            if missing:
                problems.append("missing keys: " + ", ".join(repr(k) for k in missing))
            if unexpected:
                problems.append("unexpected keys: " + ", ".join(repr(k) for k in unexpected))
        updates: list[tuple[ExTensor, Array]] = []
        for key, target in targets.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            array = value.data if isinstance(value, ExTensor) else np.asarray(value)
            if array.shape != target.shape:
                problems.append(
                    f"shape mismatch for {key!r}: the state has shape {array.shape}, the model {target.shape}"
                )
            elif array.dtype != target.dtype:
                problems.append(
                    f"dtype mismatch for {key!r}: the state has dtype {array.dtype}, the model {target.dtype}"
                )
            else:
                updates.append((target, array))
        if problems:
            raise ValueError(
                f"error(s) loading the state dict of {type(self).__name__} (nothing was loaded):\n  "
                + "\n  ".join(problems)
            )
        for target, array in updates:
            target.data = array
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ repr
    def extra_repr(self) -> str:
        """The layer's own settings, shown inside the parentheses of its repr (override in layers)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [
            f"({name}): {_indent(repr(child), 2)}"
            for name, child in self._modules.items()
            if child is not None
        ]
        lines = extra_lines + child_lines
        body = ""
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                body = extra_lines[0]
            else:
                body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{type(self).__name__}({body})"
