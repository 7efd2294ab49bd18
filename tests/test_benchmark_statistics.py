"""benchmarks/optimizers.py's pure helpers: the median's order-statistic interval, verdicts, group ratios."""

from __future__ import annotations

import importlib.util
import itertools
import math
import random
import sys
from pathlib import Path
from types import ModuleType

import pytest


def _load_benchmark() -> ModuleType:
    # benchmarks/ is not a package; its module imports only the standard library at top level
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "optimizers.py"
    spec = importlib.util.spec_from_file_location("benchmark_optimizers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


bench = _load_benchmark()


def _coverage(n: int, k: int) -> float:
    """P(x_(k) <= median <= x_(n+1-k)) for n continuous samples: 1 - 2 P(Binomial(n, 1/2) <= k - 1)."""
    return 1 - 2 * sum(math.comb(n, i) for i in range(k)) / 2**n


@pytest.mark.parametrize("n", [*range(5, 60), 100, 150, 301, 1200])
def test_median_rank_is_the_narrowest_interval_with_at_least_90_percent_coverage(n: int) -> None:
    k = bench.median_rank(n)
    assert 1 <= k <= (n + 1) // 2
    assert _coverage(n, k) >= 0.90
    assert k == (n + 1) // 2 or _coverage(n, k + 1) < 0.90


@pytest.mark.parametrize(("n", "k"), [(5, 1), (10, 2), (20, 6), (30, 11)])
def test_median_rank_matches_hand_computed_values(n: int, k: int) -> None:
    # n=20: P(B<=5) = 21700/2**20 = 0.0207 <= 0.05 < P(B<=6) = 60460/2**20 = 0.0577
    assert bench.median_rank(n) == k


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4])
def test_median_rank_is_zero_when_no_90_percent_interval_exists(n: int) -> None:
    assert bench.median_rank(n) == 0


def test_wider_confidence_takes_outer_ranks() -> None:
    assert bench.median_rank(100, 0.99) < bench.median_rank(100, 0.95) < bench.median_rank(100, 0.90)


def test_median_interval_returns_the_median_and_the_order_statistics() -> None:
    values = [9.0, 1.0, 8.0, 2.0, 7.0, 3.0, 6.0, 4.0, 5.0, 10.0]  # n=10: ranks 2 and 9
    assert bench.median_interval(values) == (5.5, 2.0, 9.0)


def test_median_interval_covers_the_population_median_at_the_promised_rate() -> None:
    # skewed, heavy-tailed samples (lognormal, population median 1): the interval is distribution-free
    rng = random.Random(0)
    n, trials = 30, 4000
    hits = 0
    for _ in range(trials):
        _, low, high = bench.median_interval([rng.lognormvariate(0.0, 1.0) for _ in range(n)])
        hits += low <= 1.0 <= high
    expected = _coverage(n, bench.median_rank(n))  # 0.901
    assert abs(hits / trials - expected) < 0.02  # four standard errors


def test_median_interval_refuses_too_few_samples() -> None:
    with pytest.raises(ValueError, match="4 samples are too few for a 90% interval"):
        bench.median_interval([1.0, 2.0, 3.0, 4.0])


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 1.5])
def test_median_rank_refuses_a_confidence_outside_0_1(confidence: float) -> None:
    with pytest.raises(ValueError, match=f"confidence must be strictly between 0 and 1, got {confidence}"):
        bench.median_rank(10, confidence)


def test_median_rank_refuses_a_negative_count() -> None:
    with pytest.raises(ValueError, match="got -1"):
        bench.median_rank(-1)


@pytest.mark.parametrize(
    ("interval", "at_most", "verdict"),
    [
        ((0.85, 0.80, 0.89), True, "met"),
        ((0.85, 0.80, 0.90), True, "met"),
        ((0.88, 0.85, 0.93), True, "undecided"),
        ((0.95, 0.91, 0.99), True, "missed"),
        ((0.95, 0.90, 0.99), False, "met"),
        ((0.88, 0.80, 0.92), False, "undecided"),
        ((0.80, 0.75, 0.89), False, "missed"),
    ],
)
def test_target_verdict_needs_the_whole_interval_on_one_side(
    interval: tuple[float, float, float], at_most: bool, verdict: str
) -> None:
    assert bench.target_verdict(interval, 0.9, at_most=at_most) == verdict


def test_group_ratios_of_an_optimizer_group() -> None:
    times = {
        "extensor/probe": 2.0,
        "extensor/Adam": 5.0,
        "torch/Adam/fused": 4.0,
        "torch/probe": 3.0,
        "torch/Adam/foreach": 20.0,
    }
    ratios = bench.group_ratios("Adam", times)
    assert ratios == pytest.approx(
        {
            "Adam/fused": 5.0 / 4.0,
            "Adam/foreach": 5.0 / 20.0,
            "Adam/of probe": 28 / 12 * 2.0 / 5.0,  # Adam moves 28 B per parameter, the probe 12 B per element
            "Adam/fused of torch probe": 28 / 12 * 3.0 / 4.0,
        }
    )


def test_group_ratios_of_the_probes_group_is_torchs_bandwidth_over_extensors() -> None:
    assert bench.group_ratios(None, {"extensor/probe": 2.0, "torch/probe": 4.0}) == {"probes": 0.5}


def test_every_optimizer_group_puts_extensors_step_next_to_torchs_fused_step() -> None:
    for group in bench.groups("big"):
        if group.name in bench.HAS_FUSED:
            assert group.ours[-1] == group.name
            assert group.theirs[0] == f"{group.name}/fused"
            assert "probe" in group.ours and "probe" in group.theirs
    assert all("probe" not in group.ours + group.theirs for group in bench.groups("small"))


@pytest.mark.parametrize("r", [0, 1, 2, 3])
def test_schedule_mirrors_groups_and_keeps_the_compared_steps_adjacent(r: int) -> None:
    this_round, next_round = bench.schedule("big", r), bench.schedule("big", r + 1)
    for (group, halves), (_, mirrored) in zip(this_round, next_round, strict=True):
        sequence = [(library, case) for library, cases in halves for case in cases]
        assert [(library, case) for library, cases in mirrored for case in cases] == sequence[::-1]
        if group.name in bench.HAS_FUSED:
            at = sequence.index(("extensor", group.name))
            assert ("torch", f"{group.name}/fused") in (sequence[at - 1 : at] + sequence[at + 1 : at + 2])
    # along a round, a group that has both halves starts with the worker the previous group ended with
    for (_, before), (_, after) in itertools.pairwise(this_round):
        ends = [library for library, cases in before if cases]
        starts = [library for library, cases in after if cases]
        if len(ends) == len(starts) == 2:
            assert ends[-1] == starts[0]
