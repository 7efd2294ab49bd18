"""Optimizer step time: extensor's kernels against torch.optim (fused, foreach) and the memory bandwidth.

    python benchmarks/optimizers.py            # 10M float32 parameters, and 1,000 tensors of 100
    python benchmarks/optimizers.py --quick    # fewer rounds

For one tensor of 10M float32 parameters, each optimizer's step time against torch with
``fused=True`` (where torch has it) and ``foreach=True``. An in-place read-modify-write probe
moving 12 bytes per element (read a, b; write a) runs in each worker: ``a[i] += s * b[i]`` as a
numba kernel in extensor's, ``a.add_(b, alpha=s)`` in torch's. Each probe gives the bandwidth that
library's threads get, and each optimizer's achieved bandwidth is counted at the bytes per
parameter its algorithm must move (Adam 28 B: read p, g, m, v; write p, m, v) as a fraction of
its own library's probe. Then 1,000 tensors of 100 floats, where the flat buffer turns a thousand
small updates into one kernel call.

How it is timed. Each library runs in its own worker process with its own default OpenMP
settings (extensor's import sets OMP_WAIT_POLICY=PASSIVE for its process; the torch worker keeps
libgomp's default, active waiting, unless the caller's environment sets a policy), so neither
library's thread pool disturbs the other's and neither gets the other's handicap. The machine's
memory bandwidth drifts by +-20% from one second to the next (other tenants), so every ratio is
formed within one *group*: single-step timings taken back to back, one request to each worker.
For 10M parameters a group is, for one optimizer, extensor's [probe, step] and torch's [fused
step, probe, foreach step], plus one group per round of the two probes alone. Every round mirrors
each group's order (halves swapped, each half's cases reversed), so extensor's step and torch's
fused step are always adjacent, milliseconds apart, and each is first in half the rounds; along a
round the order alternates so that one group ends with the worker that starts the next, which
halves the switches between workers.

Three effects of order were measured here and are neutralised, not averaged:
- Spinning threads. After replying, the torch worker's libgomp threads keep spinning: 8-9 ms of
  one core's CPU time, at most 13.5 ms (extensor's threads sleep at once). An extensor probe
  started 0-2 ms after a torch step ran a median 4-9% slower, with intervals reaching 1.5-1.7x.
  So the coordinator pauses PAUSE (10 ms) before every switch between workers, and the warm-up
  below (10 ms) takes the rest of any spin; the 50 ms pause used before was not needed.
- Cache residue. A case timed right after running itself finds part of its arrays still in the
  32 MB L3: measured here 2-7% faster than after other work, for both libraries. A warm-up that
  repeated a request's first case therefore favoured whichever case came first, and 'of probe'
  differed by 12% between the two orders. Each request now starts with WARMUP seconds of its own
  library's probe on scratch arrays (2 x 40 MB) that no timed case touches, so every timed case
  starts with caches full of unrelated data, as an optimizer step does after a backward pass; the
  two orders' medians of every ratio then agreed within their intervals.
- Idling. The machine runs slower after idling: an extensor probe timed after 100 ms of idleness
  was ~20% slower, warm-up included, than one right after the torch worker's work. The
  rhythm is the same for both libraries, and pauses are kept short so the cores never idle long.

Other processes on this 2-core machine matter more than the bandwidth drift: a parallel region
waits for its slowest thread, and a core shared with another busy process delays torch's actively
waiting threads far more than extensor's passive ones (most likely because the scheduler favours
a thread waking from sleep over one that spins), so a busy machine favours extensor: one such run
had torch's probe at 0.65x the bandwidth of extensor's. The script measures the CPU that other
processes used while it timed (/proc/stat less its own processes) and flags a run where they used
more than BUSY_CORES: such a run is no verdict. It also shows the CPU time the hypervisor
gave to other virtual machines (steal), for the record.

How it is summarised. Every ratio is computed per group, and the table prints the median over
rounds with a 90% confidence interval for that median, e.g. ``0.98x [0.94, 1.03]``. The interval
is distribution-free, from order statistics: for n independent samples the interval between the
k-th smallest and the k-th largest contains the population median with probability
1 - 2 P(B <= k - 1), B ~ Binomial(n, 1/2), whatever the distribution; k is the largest rank that
keeps this >= 90%. It is exact for any continuous distribution (no resampling, no seed), where a
bootstrap of the median resamples only the few values near the middle, is lumpy, and tends to
come out too narrow for the skewed, heavy-tailed ratios a noisy machine produces. It assumes
independent rounds: drift that lasts longer than a group cancels in the per-group ratio,
drift faster than that widens the interval honestly. Times (ms) and GB/s are plain medians.
An issue-3 target is reported as met or missed only when the whole interval is on one side of
it; otherwise this run cannot tell. Only ratios measured in the same run mean anything. Nothing
is asserted.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

#: name, extensor class name, torch class name (None: torch has none), options, bytes moved per parameter
CASES: list[tuple[str, str, str | None, dict[str, Any], int]] = [
    ("SGD momentum", "SGD", "SGD", {"lr": 0.01, "momentum": 0.9}, 20),
    ("Adam", "Adam", "Adam", {"lr": 1e-3}, 28),
    ("AdamW", "AdamW", "AdamW", {"lr": 1e-3}, 28),
    ("RMSprop", "RMSprop", "RMSprop", {"lr": 1e-2}, 20),
    ("LARS", "LARS", None, {"lr": 0.1}, 28),  # norms pass (p, g: 8 B) + SGD momentum (20 B)
    # the rest of torch.optim's element-wise roster: read p, g and the state, write p and the state
    ("Adagrad", "Adagrad", "Adagrad", {"lr": 1e-2}, 20),
    ("Adadelta", "Adadelta", "Adadelta", {"lr": 1.0}, 28),
    ("Adamax", "Adamax", "Adamax", {"lr": 2e-3}, 28),
    ("NAdam", "NAdam", "NAdam", {"lr": 2e-3}, 28),
    ("RAdam", "RAdam", "RAdam", {"lr": 1e-3}, 28),
    ("ASGD", "ASGD", "ASGD", {"lr": 1e-2}, 20),
    ("Rprop", "Rprop", "Rprop", {"lr": 1e-2}, 28),
    # beyond torch (no torch counterpart to time): the same byte counting
    ("ADOPT", "ADOPT", None, {"lr": 1e-3}, 28),
    ("Schedule-Free AdamW", "ScheduleFreeAdamW", None, {"lr": 2.5e-3}, 28),  # y, g, z, v
    ("Schedule-Free SGD", "ScheduleFreeSGD", None, {"lr": 1.0}, 20),
    ("Lion", "Lion", None, {"lr": 1e-4}, 20),
    ("LAMB", "LAMB", None, {"lr": 1e-3}, 28),  # the algorithm's bytes; the kernels move 48 (u to scratch)
    # issue 12, fewer bytes than torch: the seed's loop clips before every step; torch's
    # clip_grad_norm_ reads g for the norm, then reads and writes it to scale; ours reads it once
    # for the norm and the AdamW kernel scales as it reads (4 + 28 B)
    ("AdamW + clip_grad_norm", "AdamW", "AdamW", {"lr": 1e-3}, 32),
    # m and v stored compactly, against torch's fused float32 AdamW: p, g as before (12 B), m and
    # v read and written as bfloat16 (8 B) or int8 codes (4 B, plus 4 B of absmax per 256 values)
    ("AdamW bfloat16 state", "AdamW", "AdamW", {"lr": 1e-3}, 20),
    ("AdamW int8 state", "AdamW", "AdamW", {"lr": 1e-3}, 16),
]
#: extensor's options beyond the case's shared ones
OURS_OPTIONS: dict[str, dict[str, Any]] = {
    "AdamW bfloat16 state": {"state_dtype": "bfloat16"},
    "AdamW int8 state": {"state_dtype": "int8"},
}
#: cases whose step is `clip_grad_norm(params, 1.0)` then the optimizer's step, in both libraries
CLIPPED = {"AdamW + clip_grad_norm"}
#: issue 12's targets: step time over torch fused at most
TARGETS_VS_FUSED = {"AdamW + clip_grad_norm": 0.65, "AdamW bfloat16 state": 0.75, "AdamW int8 state": 0.6}
HAS_FUSED = {"SGD momentum", "Adam", "AdamW", "Adagrad", *CLIPPED, *OURS_OPTIONS}
BYTES_PER_PARAM = {name: per_param for name, *_, per_param in CASES}
#: the two problem sizes: tensor sizes, steps timed per case in a request
SIZES = {"big": ([10_000_000], 1), "small": ([100] * 1000, 5)}
#: rounds per size, default and --quick
ROUNDS = {"big": (200, 40), "small": (40, 12)}
#: bytes per element the probes move: read a, b; write a
PROBE_BYTES = 12
#: seconds between a request to one worker and the next request to the other: torch's libgomp
#: threads spin up to ~14 ms after a request, and WARMUP covers the rest (module docstring)
PAUSE = 0.01
#: seconds each request first spends running its library's probe on scratch arrays, untimed: the
#: cores are busy and the caches hold no timed case's data when the clock starts (module docstring)
WARMUP = 0.01
#: elements of the scratch arrays: 2 x 40 MB, more than the 32 MB L3 cache
SCRATCH_ELEMENTS = 10_000_000
#: coverage of the interval printed around every median ratio
CONFIDENCE = 0.90
#: issue 3's targets for 10M parameters: step time over torch fused at most, fraction of the probe at least
TARGET_VS_FUSED = 0.9
TARGET_OF_PROBE = 0.85
#: cores' worth of CPU used elsewhere while timing above which the run is flagged as busy
BUSY_CORES = 0.1
CI_NOTE = "times are medians; ratios are the median of per-group ratios [90% confidence interval]"


# ------------------------------------------------------------------------------ statistics
def median_rank(n: int, confidence: float = CONFIDENCE) -> int:
    """The 1-based rank k such that the k-th smallest and k-th largest of `n` independent samples
    bound a `confidence` interval for the population median: the largest k with
    P(Binomial(n, 1/2) <= k - 1) <= (1 - confidence) / 2. Zero when n is too small for any."""
    if n < 0:
        raise ValueError(f"n must be a non-negative number of samples, got {n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    tail = Fraction(1 - confidence) / 2
    total = 2**n
    k = 0
    below = 0  # 2**n * P(B <= k - 1), exact
    while k < n:
        below_next = below + math.comb(n, k)
        if Fraction(below_next, total) > tail:
            break
        below, k = below_next, k + 1
    return k


def median_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """The median of `values` and a distribution-free `confidence` interval for the population
    median: (median, low, high), the order statistics of rank `median_rank` from either end."""
    k = median_rank(len(values), confidence)
    if k == 0:
        raise ValueError(
            f"{len(values)} samples are too few for a {confidence:.0%} interval of the median "
            "(at 90%: 5 or more)"
        )
    ordered = sorted(values)
    return statistics.median(ordered), ordered[k - 1], ordered[-k]


def target_verdict(interval: tuple[float, float, float], target: float, at_most: bool) -> str:
    """'met', 'missed' or 'undecided': whether the whole interval lies on the target's good side,
    its bad side, or straddles it (`at_most`: smaller is better)."""
    _, low, high = interval
    good, bad = (high <= target, low > target) if at_most else (low >= target, high < target)
    return "met" if good else "missed" if bad else "undecided"


# ------------------------------------------------------------------------------ workers
def has_probe(sizes: list[int]) -> bool:
    """Whether the workers time the bandwidth probes for tensors of `sizes`: one big tensor only."""
    return len(sizes) == 1


def extensor_actions(sizes: list[int]) -> dict[str, Callable[[], Any]]:
    """The step of every extensor optimizer on float32 tensors of `sizes`, plus the bandwidth probe."""
    import numpy as np

    import extensor.training.optimizers as optimizers
    from extensor.core.tensor import ExTensor

    rng = np.random.default_rng(0)
    actions: dict[str, Callable[[], Any]] = {}
    if has_probe(sizes):
        actions["probe"] = extensor_probe(sizes[0])
    for name, ours, _, options, _ in CASES:
        params = [ExTensor(rng.standard_normal(n).astype(np.float32), requires_grad=True) for n in sizes]
        optimizer = getattr(optimizers, ours)(params, **options, **OURS_OPTIONS.get(name, {}))
        if callable(getattr(optimizer, "train", None)):
            optimizer.train()  # Schedule-Free steps in training mode
        for p in params:
            p.grad = rng.standard_normal(p.shape).astype(np.float32)
        actions[name] = clipped_step(optimizer, params) if name in CLIPPED else optimizer.step
    return actions


def clipped_step(optimizer: Any, params: list[Any]) -> Callable[[], None]:
    """`clip_grad_norm(params, 1.0)` then `optimizer.step()`, each time on fresh gradients.

    A backward pass would write new gradients after `zero_grad`; here `zero_grad` drops the
    previous clip's deferred scale and the presence flags are set again, which costs nothing and
    leaves the gradients' values as they were (no extra pass is timed).
    """
    from extensor.training import clip_grad_norm

    buffers = [pack.buffer for packs in optimizer._packs for pack in packs]

    def step() -> None:
        optimizer.zero_grad()
        for buffer in buffers:
            buffer.present.fill(True)
        clip_grad_norm(params, 1.0)
        optimizer.step()

    return step


def extensor_probe(n: int) -> Callable[[], None]:
    """`a[i] += s * b[i]` over two new float32 arrays of `n` elements: a parallel numba kernel
    moving 12 bytes per element (read a, b; write a), the bandwidth reference."""
    import numpy as np
    from numba import njit, prange

    import extensor  # noqa: F401 - sets OMP_WAIT_POLICY=PASSIVE before numba's OpenMP runtime loads

    @njit(parallel=True, cache=True)
    def probe(a: Any, b: Any, s: Any) -> None:  # pragma: no cover - benchmark kernel
        for i in prange(a.size):
            a[i] = a[i] + s * b[i]

    rng = np.random.default_rng(n)
    a, b = (rng.standard_normal(n).astype(np.float32) for _ in range(2))
    scale = np.float32(1e-9)
    return lambda: probe(a, b, scale)


def torch_actions(sizes: list[int]) -> dict[str, Callable[[], Any]]:
    """The step of every torch optimizer (fused where torch has it, and foreach) on tensors of `sizes`,
    plus the bandwidth probe."""
    import torch

    torch.manual_seed(0)
    actions: dict[str, Callable[[], Any]] = {}
    if has_probe(sizes):
        actions["probe"] = torch_probe(sizes[0])
    for name, _, theirs, options, _ in CASES:
        if theirs is None:
            continue
        modes = ("fused", "foreach") if name in HAS_FUSED else ("foreach",)
        for mode in modes:
            params = [torch.randn(n).requires_grad_() for n in sizes]
            for p in params:
                p.grad = torch.randn_like(p)
            optimizer = getattr(torch.optim, theirs)(params, **options, **{mode: True})
            actions[f"{name}/{mode}"] = optimizer.step
            if name in CLIPPED:
                actions[f"{name}/{mode}"] = torch_clipped_step(optimizer, params)
    return actions


def torch_clipped_step(optimizer: Any, params: list[Any]) -> Callable[[], None]:
    """`torch.nn.utils.clip_grad_norm_(params, 1.0)` then `optimizer.step()` (the seed's loop in torch)."""
    import torch

    def step() -> None:
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()

    return step


def torch_probe(n: int) -> Callable[[], Any]:
    """`a.add_(b, alpha=s)` over two new float32 tensors of `n` elements: extensor's probe in torch."""
    import torch

    a, b = torch.randn(n), torch.randn(n)
    return lambda: a.add_(b, alpha=1e-9)


def worker(library: str, size: str) -> None:
    """Serve the coordinator: for each line of tab-separated case names read on stdin, warm up (see
    WARMUP), time each case in turn and print the mean seconds per step of each, tab-separated."""
    sizes, steps = SIZES[size]
    if library == "extensor":
        actions, warm_up = extensor_actions(sizes), extensor_probe(SCRATCH_ELEMENTS)
    else:
        actions, warm_up = torch_actions(sizes), torch_probe(SCRATCH_ELEMENTS)
    for action in [*actions.values(), warm_up]:  # state allocation, compilation, thread pools
        for _ in range(3):
            action()
    print("\t".join(actions), flush=True)  # case names contain spaces
    for line in sys.stdin:
        cases = line.rstrip("\n").split("\t")
        warm_until = time.perf_counter() + WARMUP
        while time.perf_counter() < warm_until:
            warm_up()
        seconds = []
        for case in cases:
            action = actions[case]
            start = time.perf_counter()
            for _ in range(steps):
                action()
            seconds.append((time.perf_counter() - start) / steps)
        print("\t".join(map(repr, seconds)), flush=True)


# ------------------------------------------------------------------------------ coordinator
class Worker:
    """One worker process (`library`, `size`), driven over its stdin/stdout."""

    def __init__(self, library: str, size: str) -> None:
        self.library = library
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", library, size],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.cases = self.process.stdout.readline().rstrip("\n").split("\t")

    def time(self, cases: Sequence[str]) -> dict[str, float]:
        """Seconds per step of each of `cases`, timed back to back in this order."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("\t".join(cases) + "\n")
        self.process.stdin.flush()
        reply = self.process.stdout.readline()
        if not reply:
            raise RuntimeError(f"the {self.library} worker exited (exit code {self.process.wait()})")
        return dict(zip(cases, map(float, reply.split("\t")), strict=True))

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


class Coordinator:
    """Both workers of one size; pauses before every switch from one worker to the other."""

    def __init__(self, size: str) -> None:
        self.workers = {library: Worker(library, size) for library in ("extensor", "torch")}
        self.last: str | None = None

    def time(self, library: str, cases: Sequence[str]) -> dict[str, float]:
        """Seconds per step of `cases` in `library`'s worker, after the pause if the other worker ran last."""
        if self.last is not None and self.last != library:
            time.sleep(PAUSE)
        self.last = library
        return self.workers[library].time(cases)

    def close(self) -> None:
        for process in self.workers.values():
            process.close()


@dataclass
class Group:
    """Cases timed back to back, one request to each worker: `name`'s (None: the two probes alone)."""

    name: str | None
    ours: list[str]
    theirs: list[str]


def groups(size: str) -> list[Group]:
    """The groups of one round. Extensor's step ends its half and torch's fused step starts its own,
    so the two are adjacent in either order; each library's probe sits just beyond its step."""
    probes = has_probe(SIZES[size][0])
    result = [Group(None, ["probe"], ["probe"])] if probes else []
    for name, _, theirs, *_ in CASES:
        modes = ("fused", "foreach") if name in HAS_FUSED else ("foreach",) if theirs else ()
        theirs_cases = [f"{name}/{mode}" for mode in modes]
        if probes and name in HAS_FUSED:
            theirs_cases.insert(1, "probe")
        result.append(Group(name, ["probe", name] if probes else [name], theirs_cases))
    return result


def schedule(size: str, r: int) -> list[tuple[Group, list[tuple[str, list[str]]]]]:
    """Round `r`'s groups, each with its (library, cases) halves in the order they are timed.

    A group's order is mirrored every round (halves swapped and each half's cases reversed), so
    extensor's step and torch's fused step stay adjacent and each comes first in half the rounds;
    along a round the order alternates, so that one group ends with the worker that starts the next."""
    result = []
    for g, group in enumerate(groups(size)):
        halves = [("extensor", group.ours), ("torch", group.theirs)]
        if (r + g) % 2:
            halves = [(library, cases[::-1]) for library, cases in reversed(halves)]
        result.append((group, halves))
    return result


@dataclass
class Measurement:
    """What `measure` collects: per-case times, per-group ratios, and how busy the machine was."""

    #: seconds per step of every timing, keys 'extensor/CASE' and 'torch/CASE'
    samples: dict[str, list[float]]
    #: per-group ratios: 'NAME/fused', 'NAME/foreach' (ours over theirs), 'NAME/of probe',
    #: 'NAME/fused of torch probe' (fractions of a probe's bandwidth) and 'probes' (torch's probe
    #: bandwidth over extensor's)
    ratios: dict[str, list[float]]
    #: cores' worth of CPU used by other processes, and stolen by the hypervisor, while timing
    #: (None: no /proc)
    elsewhere: tuple[float, float] | None
    #: wall seconds the rounds took
    seconds: float


def measure(size: str, rounds: int) -> Measurement:
    """Time `rounds` rounds of every group of `size`, each group's two halves in alternating order."""
    coordinator = Coordinator(size)
    try:
        meter = CpuMeter([os.getpid(), *(w.process.pid for w in coordinator.workers.values())])
        started = time.perf_counter()
        samples: dict[str, list[float]] = {}
        ratios: dict[str, list[float]] = {}
        for r in range(rounds):
            for group, halves in schedule(size, r):
                times = {
                    f"{library}/{case}": seconds
                    for library, cases in halves
                    if cases
                    for case, seconds in coordinator.time(library, cases).items()
                }
                for key, seconds in times.items():
                    samples.setdefault(key, []).append(seconds)
                for key, value in group_ratios(group.name, times).items():
                    ratios.setdefault(key, []).append(value)
        return Measurement(samples, ratios, meter.elsewhere(), time.perf_counter() - started)
    finally:
        coordinator.close()


def group_ratios(name: str | None, times: dict[str, float]) -> dict[str, float]:
    """The ratios one group's `times` (keys 'LIBRARY/CASE') give; see `Measurement.ratios` for their keys."""
    ours_probe, theirs_probe = times.get("extensor/probe"), times.get("torch/probe")
    if name is None:
        assert ours_probe is not None and theirs_probe is not None
        return {"probes": ours_probe / theirs_probe}
    scale = BYTES_PER_PARAM[name] / PROBE_BYTES
    ours = times[f"extensor/{name}"]
    result = {
        f"{name}/{mode}": ours / times[f"torch/{name}/{mode}"]
        for mode in ("fused", "foreach")
        if f"torch/{name}/{mode}" in times
    }
    if ours_probe is not None:
        result[f"{name}/of probe"] = scale * ours_probe / ours
    if theirs_probe is not None:
        result[f"{name}/fused of torch probe"] = scale * theirs_probe / times[f"torch/{name}/fused"]
    return result


class CpuMeter:
    """CPU time the rest of the machine uses from now on, apart from the processes `pids` (Linux /proc).

    Torch's workers wait actively and extensor's passively, so a core taken by someone else costs
    torch more: a run with other processes busy favours extensor and is no verdict."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.start = self._read()

    def _read(self) -> tuple[float, float, float, float] | None:
        """(wall seconds, busy CPU seconds of the machine, stolen CPU seconds, CPU seconds of `pids`)."""
        try:
            with open("/proc/stat") as stat:
                fields = [int(x) for x in stat.readline().split()[1:9]]
            ours = 0
            for pid in self.pids:
                with open(f"/proc/{pid}/stat") as stat:
                    after_name = stat.read().rsplit(")", 1)[1].split()
                ours += int(after_name[11]) + int(after_name[12])  # utime, stime
        except (OSError, ValueError, IndexError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = fields
        tick = os.sysconf("SC_CLK_TCK")
        return time.perf_counter(), (user + nice + system + irq + softirq) / tick, steal / tick, ours / tick

    def elsewhere(self) -> tuple[float, float] | None:
        """Cores' worth of CPU that other processes used since construction, and that was stolen."""
        end = self._read()
        if self.start is None or end is None:
            return None
        wall, busy, stolen, ours = (b - a for a, b in zip(self.start, end, strict=True))
        return max(busy - ours, 0.0) / wall, stolen / wall


def describe_load(elsewhere: tuple[float, float] | None) -> str:
    """One line on how busy the machine was while timing, with a warning when other processes were."""
    if elsewhere is None:
        return "CPU use by other processes: unknown (no /proc)."
    others, stolen = elsewhere
    line = f"While timing, other processes used {others:.2f} cores and the hypervisor stole {stolen:.2f}."
    if others > BUSY_CORES:
        line += (
            " **The machine was busy: torch's actively waiting threads lose more to a shared core than"
            " extensor's sleeping ones, so these ratios favour extensor; rerun on an idle machine.**"
        )
    return line


def big(rounds: int) -> None:
    """The 10M-parameter table, the probes and issue 3's verdicts."""
    n = SIZES["big"][0][0]
    measured = measure("big", rounds)
    times = {key: statistics.median(values) for key, values in measured.samples.items()}
    ratios = measured.ratios
    rates = {lib: PROBE_BYTES * n / times[f"{lib}/probe"] / 1e9 for lib in ("extensor", "torch")}
    print(f"\n### 10M float32 parameters, one tensor ({rounds} rounds in {measured.seconds:.0f} s; ", end="")
    print(f"{CI_NOTE})\n")
    print(
        "Bandwidth probes, 12 B/element: `a[i] += s*b[i]` (numba, extensor worker) "
        f"{_ms(times['extensor/probe'])}, {rates['extensor']:.1f} GB/s; "
        f"`a.add_(b, alpha=s)` (torch worker) {_ms(times['torch/probe'])}, {rates['torch']:.1f} GB/s; "
        f"torch's bandwidth over extensor's, same group: {_ratio(ratios['probes'])}.",
        describe_load(measured.elsewhere),
        "",
        sep="\n",
    )
    print(
        "| optimizer | extensor | torch fused | torch foreach | vs fused | vs foreach | GB/s (B/param) "
        "| of probe | torch fused of torch probe |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, *_, nbytes in CASES:
        ours = times[f"extensor/{name}"]
        cells = [
            name,
            _ms(ours),
            _ms(times.get(f"torch/{name}/fused")),
            _ms(times.get(f"torch/{name}/foreach")),
            _ratio(ratios.get(f"{name}/fused")),
            _ratio(ratios.get(f"{name}/foreach")),
            f"{nbytes * n / ours / 1e9:.1f} ({nbytes})",
            _percent(ratios.get(f"{name}/of probe")),
            _percent(ratios.get(f"{name}/fused of torch probe")),
        ]
        print("| " + " | ".join(cells) + " |")
    print(
        f"\nIssue 3's targets, at most {TARGET_VS_FUSED}x torch fused and at least {TARGET_OF_PROBE:.0%} "
        "of the probe (met or missed only when the whole 90% interval is on one side):\n"
    )
    for name, *_ in CASES:
        verdicts = []
        if name in HAS_FUSED:
            fused = median_interval(ratios[f"{name}/fused"])
            verdicts.append(f"vs fused {target_verdict(fused, TARGET_VS_FUSED, at_most=True)}")
        of_probe = median_interval(ratios[f"{name}/of probe"])
        verdicts.append(f"of probe {target_verdict(of_probe, TARGET_OF_PROBE, at_most=False)}")
        print(f"- {name}: {'; '.join(verdicts)}")
    print("\nIssue 12's targets (fewer bytes than torch), against torch fused in the same group:\n")
    for name, target in TARGETS_VS_FUSED.items():
        fused = median_interval(ratios[f"{name}/fused"])
        print(f"- {name}: at most {target}x torch fused: {target_verdict(fused, target, at_most=True)}")


def small(rounds: int) -> None:
    """The 1,000-tensor table: Python and launch overhead rather than bandwidth."""
    measured = measure("small", rounds)
    times = {key: statistics.median(values) for key, values in measured.samples.items()}
    ratios = measured.ratios
    print(f"\n### 1,000 tensors of 100 float32 ({rounds} rounds in {measured.seconds:.0f} s; {CI_NOTE})\n")
    print(describe_load(measured.elsewhere) + "\n")
    print("| optimizer | extensor | torch fused | torch foreach | vs fused | vs foreach |")
    print("|---|---|---|---|---|---|")
    for name, *_ in CASES:
        cells = [
            name,
            f"{times[f'extensor/{name}'] * 1e3:.3f} ms",
            _ms(times.get(f"torch/{name}/fused")),
            _ms(times.get(f"torch/{name}/foreach")),
            _ratio(ratios.get(f"{name}/fused"), 3),
            _ratio(ratios.get(f"{name}/foreach"), 3),
        ]
        print("| " + " | ".join(cells) + " |")


FIRST_STEP = """
import time
start = time.perf_counter()
import numpy as np
from extensor.core.tensor import ExTensor
from extensor.training.optimizers import Adam
imported = time.perf_counter()
p = ExTensor(np.ones(1000, dtype=np.float32), requires_grad=True)
p.grad = np.ones(1000, dtype=np.float32)
optimizer = Adam([p])
before = time.perf_counter()
optimizer.step()
first = time.perf_counter()
optimizer.step()
print(imported - start, first - before, time.perf_counter() - first)
"""


def first_step() -> None:
    """Import time and first-step time of a fresh process, with the kernel cache warm."""
    subprocess.run([sys.executable, "-c", FIRST_STEP], check=True, capture_output=True)  # warms the cache
    results = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", FIRST_STEP], check=True, capture_output=True, text=True)
        results.append([float(x) for x in out.stdout.split()])
    imported, first, second = (statistics.median(column) for column in zip(*results, strict=True))
    print("\n### A fresh process, kernel cache warm (medians of 3 processes)\n")
    print(f"import extensor.training.optimizers: {imported:.2f} s; first Adam step: {first:.3f} s "
          "(numba's one-time start-up and loading the cached kernel); "
          f"second step: {second * 1e3:.3f} ms")  # fmt: skip


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e3:.2f} ms"


def _ratio(values: Sequence[float] | None, digits: int = 2) -> str:
    """'0.98x [0.94, 1.03]': the median of per-round `values` and its 90% interval."""
    if values is None:
        return "—"
    median, low, high = median_interval(values)
    return f"{median:.{digits}f}x [{low:.{digits}f}, {high:.{digits}f}]"


def _percent(values: Sequence[float] | None) -> str:
    """'93% [90, 96]': the median of per-round fractions `values` and its 90% interval, in percent."""
    if values is None:
        return "—"
    median, low, high = median_interval(values)
    return f"{100 * median:.0f}% [{100 * low:.0f}, {100 * high:.0f}]"


def versions() -> str:
    """Library versions and thread counts, from a throwaway process (the coordinator imports neither)."""
    code = (
        "import numba, numpy, torch; "
        "print(f'torch {torch.__version__}, numba {numba.__version__}, numpy {numpy.__version__}, "
        "threads: torch {torch.get_num_threads()}, numba {numba.get_num_threads()}')"
    )
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument(
        "--cases", nargs="+", metavar="NAME", help="time only these optimizers (the table's first column)"
    )
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    if args.cases:
        unknown = sorted(set(args.cases) - {name for name, *_ in CASES})
        if unknown:
            parser.error(f"unknown cases {unknown}; choose from {[name for name, *_ in CASES]}")
        CASES[:] = [case for case in CASES if case[0] in args.cases]
        for name in list(TARGETS_VS_FUSED):
            if name not in args.cases:
                del TARGETS_VS_FUSED[name]
    started = time.perf_counter()
    policy = os.environ.get("OMP_WAIT_POLICY")
    print(f"{versions()}; OMP_WAIT_POLICY in the environment: {policy} "
          "(extensor's worker sets PASSIVE for itself when unset)")  # fmt: skip
    which = 1 if args.quick else 0
    big(ROUNDS["big"][which])
    small(ROUNDS["small"][which])
    first_step()
    print(f"\n(whole run: {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
