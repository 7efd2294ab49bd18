"""MPI job: the communicator's collectives, the sampler's shards, and DDP's broadcast, averaging and checks.

Run by tests/distributed/test_ddp.py on 2 or 3 ranks; any failed check aborts the job.
"""

from __future__ import annotations

import numba
import numpy as np

from extensor import ExTensor
from extensor.distributed import DistributedDataParallel, DistributedSampler, world
from extensor.training.flat import FlatBuffer

comm = world()
rank, size = comm.rank, comm.size
assert size > 1, "run this under mpiexec with several ranks"

# ----------------------------------------------------------------------------- collectives
expected_sum = sum(np.arange(101, dtype=np.float64) * (r + 1) for r in range(size))
values = np.arange(101, dtype=np.float64) * (rank + 1)
comm.allreduce_sum_(values, chunk_bytes=24)  # 3 elements per slice: 34 slices, the last partial
np.testing.assert_array_equal(values, expected_sum)

flags = np.array([rank == 0, rank == size - 1, False], dtype=np.uint8)
comm.allreduce_max_(flags)
assert flags.tolist() == [1, 1, 0], flags

block = np.full(37, rank, dtype=np.float32)
comm.broadcast_(block, root=size - 1, chunk_bytes=16)
assert (block == size - 1).all(), block

counts = (*[5, 0, 4, 2][: size - 1], 3)
total = sum(counts)
send = (np.arange(total, dtype=np.float32) + 1) * (rank + 1)
receive = np.empty(counts[rank], dtype=np.float32)
comm.reduce_scatter_sum(send, receive, counts)
start = sum(counts[:rank])
expected = (np.arange(total, dtype=np.float32) + 1)[start : start + counts[rank]] * sum(range(1, size + 1))
np.testing.assert_array_equal(receive, expected)

gathered = np.full(total, -1.0)
gathered[start : start + counts[rank]] = rank
comm.allgather_(gathered, counts)
np.testing.assert_array_equal(gathered, np.repeat(np.arange(size, dtype=np.float64), counts))

assert comm.allgather_object(("rank", rank)) == [("rank", r) for r in range(size)]
assert comm.broadcast_object({"from": rank}, root=1) == {"from": 1}

# ----------------------------------------------------------------------------- sampler
for length, drop_last, shuffle in [(23, False, True), (23, True, True), (24, False, False)]:
    sampler = DistributedSampler(length, shuffle=shuffle, seed=7, drop_last=drop_last)
    sampler.set_epoch(3)
    shards = comm.allgather_object(sampler.indices().tolist())
    assert len({len(s) for s in shards}) == 1, f"ranks take different numbers of samples: {shards}"
    union = [i for shard in shards for i in shard]
    if drop_last or length % size == 0:
        assert len(set(union)) == len(union), f"shards overlap: {shards}"
    assert set(union) == set(range(length)) or drop_last, f"samples missed: {shards}"

# ----------------------------------------------------------------------------- DDP


class Model:
    """Parameters of two dtypes (so two flat buffers), one loose parameter, and one buffer."""

    def __init__(self, seed: int, width: int = 3) -> None:
        rng = np.random.default_rng(seed)
        self.weights = [
            ExTensor(rng.standard_normal((width, 4)), requires_grad=True),
            ExTensor(rng.standard_normal(4), requires_grad=True),
            ExTensor(rng.standard_normal((2, 2)), requires_grad=True),
        ]
        self.singles = [
            ExTensor(rng.standard_normal(5).astype(np.float32), requires_grad=True),
            ExTensor(rng.standard_normal(6).astype(np.float32), requires_grad=True),
        ]
        self.loose = ExTensor(rng.standard_normal(3), requires_grad=True)
        self.running_mean = rng.standard_normal(4)

    def parameters(self) -> list[ExTensor]:
        return [*self.weights, *self.singles, self.loose]

    def buffers(self) -> list[np.ndarray]:
        return [self.running_mean]

    def forward(self, x: ExTensor) -> ExTensor:
        return x @ self.weights[0]


model = Model(seed=100 + rank)
reference = Model(seed=100)
ddp = DistributedDataParallel(model)
assert numba.get_num_threads() == 1, f"each of {size} ranks on 2 cores should get 1 numba thread"
for mine, theirs in zip(model.parameters(), reference.parameters(), strict=True):
    np.testing.assert_array_equal(mine.data, theirs.data)
np.testing.assert_array_equal(model.running_mean, reference.running_mean)
model.running_mean[:] = rank  # each forward takes rank 0's buffers again
ddp(ExTensor(np.ones((2, 3))))
assert (model.running_mean == 0).all()

# Packed the way an optimizer packs: one buffer per dtype; `loose` stays unpacked.
float64_buffer = FlatBuffer(model.weights)
float32_buffer = FlatBuffer(model.singles)
gradients = {
    id(p): [np.random.default_rng(r * 10 + i).standard_normal(p.shape).astype(p.dtype) for r in range(size)]
    for i, p in enumerate(model.parameters())
}
# weights[1]: absent on rank 0 only; weights[2]: absent everywhere; singles[1]: absent on the last rank.
absent = {id(model.weights[1]): {0}, id(model.weights[2]): set(range(size)), id(model.singles[1]): {size - 1}}
for parameter in model.parameters():
    parameter.grad = None
    if rank not in absent.get(id(parameter), set()):
        parameter.grad = gradients[id(parameter)][rank]
if rank == 0:
    float64_buffer.grad[float64_buffer.segment(1)] = np.nan  # stale content of an absent gradient

with ddp.no_sync():
    ddp.reduce_gradients()
np.testing.assert_array_equal(model.weights[0].grad, gradients[id(model.weights[0])][rank])

ddp.reduce_gradients()
for parameter in model.parameters():
    missing = absent.get(id(parameter), set())
    if len(missing) == size:
        assert parameter.grad is None
        continue
    contributions = [g for r, g in enumerate(gradients[id(parameter)]) if r not in missing]
    expected_mean = np.sum(contributions, axis=0) / size
    tolerance = 1e-6 if parameter.dtype == np.float32 else 1e-15
    np.testing.assert_allclose(parameter.grad, expected_mean, rtol=tolerance, atol=tolerance)

# ----------------------------------------------------------------------------- layout mismatch
try:
    DistributedDataParallel(Model(seed=1, width=3 if rank == 0 else 5))
except ValueError as error:
    message = str(error)
    assert "rank 0 has 'parameter 0: shape (3, 4) dtype float64'" in message, message
    assert "rank 1 has 'parameter 0: shape (5, 4) dtype float64'" in message, message
else:
    raise AssertionError("a shape mismatch across ranks went undetected")

comm.barrier()
print(f"rank {rank} of {size}: collectives ok", flush=True)
