"""MPI job: resume the sharded checkpoints that parity.py wrote on another number of ranks.

Each checkpoint is loaded twice on every rank: into a ShardedOptimizer over this job's ranks
(re-sharding the state), and into the plain optimizer (the single-process resume). Both continue
for a few steps — sharded on this rank's batches, plain on the union of all ranks' batches — and
must agree.

Usage: resume.py DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from harness import CONFIGS, Setup, assert_states_close, assert_tensors_close, build_scaled, train

from extensor.distributed import world
from extensor.distributed.sharded import ShardedOptimizer
from extensor.training.checkpoint import read_checkpoint

CONTINUE = 6
comm = world()
folder = Path(sys.argv[1])
resumed = []
for config in CONFIGS:
    path = folder / f"{config.name}.safetensors"
    checkpoint = read_checkpoint(path)
    setup = Setup(comm, np.float64, seed=1)

    plain_model = setup.model()
    plain_model.load_state_dict(checkpoint.model)
    plain = build_scaled(config, setup.groups(plain_model))
    plain.load_state_dict(checkpoint.optimizer)
    train(setup, plain_model, plain, steps=CONTINUE, mode="reference", clip=config.clip, start_step=20)

    model = setup.model(seed_offset=comm.rank)
    model.load_state_dict(checkpoint.model)
    sharded = ShardedOptimizer(build_scaled(config, setup.groups(model)))
    sharded.load_state_dict(checkpoint.optimizer)
    train(setup, model, sharded, steps=CONTINUE, mode="sharded", clip=config.clip, start_step=20)

    what = f"{config.name} resumed on {comm.size} ranks"
    assert_tensors_close(model, plain_model, np.float64, what)
    assert_states_close(sharded.state_dict(), plain.state_dict(), np.float64, what)
    resumed.append(config.name)

comm.barrier()
if comm.rank == 0:
    print("resumed: " + " ".join(resumed), flush=True)
