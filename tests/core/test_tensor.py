"""ExTensor's metadata, conversions, dtype rules and repr."""

from __future__ import annotations

import numpy as np
import pytest

from extensor import ExTensor


def test_python_numbers_follow_torch_dtypes_and_arrays_keep_theirs():
    assert ExTensor(1.5).dtype == np.float32
    assert ExTensor([1, 2]).dtype == np.int64
    assert ExTensor(np.ones(2)).dtype == np.float64
    assert ExTensor([1.0, 2.0], dtype=np.float64).dtype == np.float64
    shared = np.ones(3)
    assert ExTensor(shared).data is shared


@pytest.mark.parametrize("array", [np.array(["a"]), np.array([None]), np.array([1j]), np.str_("a")])
def test_only_bool_integer_and_floating_arrays_become_tensors(array):
    with pytest.raises(TypeError, match="expected bool, integer or floating"):
        ExTensor(array)


def test_metadata_and_conversions():
    t = ExTensor(np.arange(6.0).reshape(2, 3))
    assert (t.shape, t.ndim, t.size, t.numel(), len(t)) == ((2, 3), 2, 6, 6, 2)
    assert t.numpy() is t.data and np.asarray(t) is t.data
    assert np.asarray(t, dtype=np.float32).dtype == np.float32
    assert t.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    s = ExTensor(np.array(2.5))
    assert s.item() == 2.5 and float(s) == 2.5 and int(s) == 2 and bool(s)
    with pytest.raises(ValueError, match="one element"):
        t.item()
    with pytest.raises(ValueError, match="ambiguous"):
        bool(t)
    with pytest.raises(TypeError, match="0-d"):
        len(s)


def test_repr():
    assert repr(ExTensor([1.5, 2.0])) == "ExTensor([1.5, 2. ])"
    assert (
        repr(ExTensor(np.array([1.0]), requires_grad=True))
        == "ExTensor([1.], dtype=float64, requires_grad=True)"
    )
    assert repr(ExTensor([[1, 2], [3, 4]])) == "ExTensor([[1, 2],\n          [3, 4]])"
    assert repr(ExTensor(np.array(True))) == "ExTensor(True, dtype=bool)"


def test_tensors_hash_by_identity():
    a, b = ExTensor(np.ones(2)), ExTensor(np.ones(2))
    assert len({a: 1, b: 2}) == 2
