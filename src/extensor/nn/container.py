"""Containers: `Sequential` (a pipeline) and `ModuleList` (an indexable list of modules)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any, overload

from extensor.nn.module import Module


def _index(index: Any, length: int, kind: str) -> int:
    if not isinstance(index, int) or isinstance(index, bool):
        raise TypeError(f"{kind} indices must be integers or slices, got {type(index).__name__}")
    if not -length <= index < length:
        raise IndexError(f"index {index} is out of range for a {kind} of length {length}")
    return index % length


class _ModuleSequence(Module):
    """What Sequential and ModuleList share: length, iteration and positional access by index."""

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(m for m in self._modules.values() if m is not None)

    def _name_at(self, index: Any) -> str:
        """The registered name of the module at position `index` (negative counts from the end)."""
        names = list(self._modules)
        return names[_index(index, len(names), type(self).__name__)]

    def _module_at(self, index: Any) -> Module:
        module = self._modules[self._name_at(index)]
        assert module is not None
        return module

    def __setitem__(self, index: int, module: Module) -> None:
        self.add_module(self._name_at(index), module)


class Sequential(_ModuleSequence):
    """Modules applied one after the other: `forward(x) = mₙ(…m₂(m₁(x)))`.

    `Sequential(m1, m2, ...)` names the modules "0", "1", ...; `Sequential(OrderedDict(name=m, ...))`
    keeps the given names (as torch.nn.Sequential).
    """

    def __init__(self, *modules: Module | OrderedDict[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, named in modules[0].items():
                self.add_module(name, named)
            return
        for i, item in enumerate(modules):
            if not isinstance(item, Module):
                raise TypeError(f"Sequential takes Modules, argument {i} is a {type(item).__name__}")
            self.add_module(str(i), item)

    def forward(self, input: Any) -> Any:
        """Feed `input` through every module in order."""
        for module in self._modules.values():
            if module is not None:
                input = module(input)
        return input

    @overload
    def __getitem__(self, index: int) -> Module: ...

    @overload
    def __getitem__(self, index: slice) -> Sequential: ...

    def __getitem__(self, index: int | slice) -> Module | Sequential:
        if isinstance(index, slice):
            items = list(self._modules.items())[index]
            return Sequential(OrderedDict((name, m) for name, m in items if m is not None))
        return self._module_at(index)

    def append(self, module: Module) -> Sequential:
        """Add `module` at the end (named by its position)."""
        self.add_module(str(len(self)), module)
        return self


class ModuleList(_ModuleSequence):
    """A list of modules whose parameters are registered (names "0", "1", ...), as torch.nn.ModuleList."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    @overload
    def __getitem__(self, index: int) -> Module: ...

    @overload
    def __getitem__(self, index: slice) -> ModuleList: ...

    def __getitem__(self, index: int | slice) -> Module | ModuleList:
        if isinstance(index, slice):
            return ModuleList(m for m in list(self._modules.values())[index] if m is not None)
        return self._module_at(index)

    def append(self, module: Module) -> ModuleList:
        """Add `module` at the end."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        """Add each of `modules` at the end."""
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert `module` before position `index`, renumbering the ones after it."""
        modules = [m for m in self._modules.values() if m is not None]
        modules.insert(index, module)
        for i, m in enumerate(modules):
            self.add_module(str(i), m)
