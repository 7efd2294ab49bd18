"""MPI job: R ranks with batch B each == one process with batch R*B, for every optimizer, replicated
(DistributedDataParallel) and sharded (ShardedOptimizer), float64 and float32, after 20 steps.

On every rank the single-process reference runs locally on the union of the ranks' batches (the
same data order), so each rank checks itself. Also checked: gradient accumulation under
`no_sync()`, clipping by the global norm, parameters without gradients, two parameter groups,
the consolidated sharded state dict, and a sharded run whose per-tensor norms are NOT completed
over the ranks (the LARS bug) — which must fail the comparison.

Usage: parity.py [--save DIR]   (with --save, rank 0 writes the float64 sharded runs' checkpoints)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from harness import (
    CONFIGS,
    STEPS,
    Setup,
    assert_states_close,
    assert_tensors_close,
    build_scaled,
    save,
    train,
)

from extensor.distributed import DistributedDataParallel, world
from extensor.distributed.sharded import ShardedOptimizer, state_bytes

parser = argparse.ArgumentParser()
parser.add_argument("--save", type=Path)
args = parser.parse_args()

comm = world()
checked: list[str] = []
for config in CONFIGS:
    for dtype in (np.float64, np.float32):
        setup = Setup(comm, dtype)
        reference_model, reference = setup.reference(config)
        train(setup, reference_model, reference, steps=STEPS, mode="reference", clip=config.clip)

        # replicated: DDP + the plain optimizer on every rank
        model = setup.model(seed_offset=comm.rank)  # different on every rank until DDP broadcasts
        ddp = DistributedDataParallel(model)
        optimizer = build_scaled(config, setup.groups(model))
        train(setup, ddp, optimizer, steps=STEPS, mode="ddp", clip=config.clip, accumulate=config.accumulate)
        assert_tensors_close(model, reference_model, dtype, f"{config.name} {np.dtype(dtype)} ddp")

        # sharded: ZeRO-1 (it broadcasts rank 0's parameters itself)
        model = setup.model(seed_offset=comm.rank)
        sharded = ShardedOptimizer(build_scaled(config, setup.groups(model)))
        train(setup, model, sharded, steps=STEPS, mode="sharded", clip=config.clip)
        what = f"{config.name} {np.dtype(dtype)} sharded"
        assert_tensors_close(model, reference_model, dtype, what)
        consolidated = sharded.state_dict()  # collective: every rank calls it
        assert_states_close(consolidated, reference.state_dict(), dtype, what)
        if comm.size > 1 and state_bytes(reference):
            assert state_bytes(sharded) <= state_bytes(reference) // comm.size + 64, what
        if args.save is not None and comm.rank == 0 and dtype == np.float64:
            save(args.save / f"{config.name}.safetensors", model, consolidated)
        checked.append(f"{config.name}/{np.dtype(dtype)}")

        if config.name == "lars" and comm.size > 1:
            # The bug this parity check exists for: per-tensor norms taken over each rank's part of a
            # tensor only, as when the partial sums are not all-reduced. It must not pass.
            class PartialNormsOptimizer(ShardedOptimizer):
                def _complete_partial_sums(self, partial: np.ndarray) -> np.ndarray:
                    return partial

            model = setup.model()
            broken = PartialNormsOptimizer(build_scaled(config, setup.groups(model)))
            train(setup, model, broken, steps=STEPS, mode="sharded", clip=config.clip)
            try:
                assert_tensors_close(model, reference_model, dtype, "lars without the norm all-reduce")
            except AssertionError:
                checked.append(f"lars-partial-norms-detected/{np.dtype(dtype)}")

comm.barrier()
if comm.rank == 0:
    print("checked: " + " ".join(checked), flush=True)
