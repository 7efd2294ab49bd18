"""The default generator: manual_seed, reseeding in place, and a JSON round trip of its state."""

from __future__ import annotations

import json

import numpy as np
import pytest

import extensor as et
from extensor.core import random as xrandom

pytestmark = pytest.mark.usefixtures("restore_default_generator")


def test_manual_seed_reseeds_the_same_generator_in_place():
    held = et.default_generator()
    returned = et.manual_seed(5)
    assert returned is held
    first = held.random(4)
    et.manual_seed(5)
    np.testing.assert_array_equal(held.random(4), first)
    np.testing.assert_array_equal(first, np.random.Generator(np.random.PCG64(5)).random(4))
    assert et.initial_seed() == 5


def test_negative_seeds_wrap_like_torch_and_bad_seeds_are_rejected():
    et.manual_seed(-1)
    assert et.initial_seed() == 2**64 - 1
    with pytest.raises(ValueError, match="2\\*\\*64"):
        et.manual_seed(2**64)
    with pytest.raises(TypeError, match="int"):
        et.manual_seed(1.5)
    with pytest.raises(TypeError, match="int"):
        et.manual_seed(True)


def test_state_round_trips_through_json():
    et.manual_seed(123)
    et.default_generator().standard_normal(3)
    state = json.loads(json.dumps(et.get_rng_state()))
    expected = et.default_generator().standard_normal(10)
    et.manual_seed(999)
    et.set_rng_state(state)
    np.testing.assert_array_equal(et.default_generator().standard_normal(10), expected)
    assert et.initial_seed() == 123
    assert all(isinstance(v, str) for v in state["state"].values())


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda s: s.update(bit_generator="MT19937"), ValueError),
        (lambda s: s.update(state={"state": "1"}), ValueError),
        (lambda s: s["state"].update(state="abc"), ValueError),
        (lambda s: s["state"].update(inc=str(2**128)), ValueError),
        (lambda s: s.update(has_uint32=2), ValueError),
    ],
)
def test_bad_states_are_rejected_before_anything_changes(mutate, error):
    state = et.get_rng_state()
    mutate(state)
    before = et.get_rng_state()
    with pytest.raises(error):
        et.set_rng_state(state)
    assert et.get_rng_state() == before
    with pytest.raises(TypeError, match="dict"):
        et.set_rng_state("state")


def test_resolve_generator():
    g = np.random.default_rng(0)
    assert xrandom.resolve_generator(g) is g
    assert xrandom.resolve_generator(None) is et.default_generator()
    with pytest.raises(TypeError, match="Generator"):
        xrandom.resolve_generator(np.random.RandomState(0))
