"""Forward + backward time of extensor against PyTorch CPU, measured in the same run.

    python benchmarks/forward_backward.py               # 1 and 2 threads, 15 rounds each
    python benchmarks/forward_backward.py --quick       # 5 rounds
    python benchmarks/forward_backward.py --threads 2   # one thread setting
    python benchmarks/forward_backward.py --networks gpt lstm

Four float32 networks, the same weights in both libraries:

- MLP 784-512-512-10 with ReLU, batch 128;
- LeNet-5-style CNN on 1x28x28 inputs, batch 64: Conv(1->6, 5x5, pad 2) ReLU MaxPool2 ->
  Conv(6->16, 5x5) ReLU MaxPool2 -> Flatten -> Linear 400-120-84-10 with ReLU;
- GPT: `extensor.models.GPT(65, block_size=64, n_layer=4, n_head=4, n_embd=128)` (token and
  position embeddings, 4 pre-norm blocks of causal 4-head attention and a GELU MLP 128-512-128,
  final LayerNorm, head tied to the token embedding), batch 32 of 64 random ids; torch's twin
  uses nn.MultiheadAttention(batch_first=True) with a causal mask and ``is_causal`` (its fused
  scaled-dot-product kernel);
- CharLSTM: `extensor.models.CharLSTM(65, block_size=64, embedding_dim=64, hidden_size=256,
  num_layers=2)` (Embedding, 2-layer LSTM of 256, Linear head), batch 32 of 64 random ids;
  torch's twin is nn.Embedding + nn.LSTM(batch_first=True) + nn.Linear.

The torch twins of the language models carry the same parameter names, so extensor's state_dict
loads into them; each worker reports its first loss and the coordinator checks that they agree.

One step is: drop the gradients, forward, cross-entropy loss (for the language models over all
32·64 positions' 65 logits against random next-token ids), backward (gradients accumulated into
every parameter's `.grad`).

How it is timed. Each library runs in its own worker process (the extensor worker never imports
torch), so neither library's thread pool competes with the other's inside one process. A
coordinator loads the same weights and batch into both, then asks them in turn to time 10 steps;
a round is one batch of each, the order alternating between rounds, so both see the same machine
load. Before each batch it pauses, so the idle worker's BLAS/OpenMP threads have stopped spinning.
The table shows the median per-step times and the median over rounds of the per-round ratio
extensor / torch. Targets: MLP <= 1.3x, CNN <= 2x, GPT <= 1.3x, CharLSTM <= 1.5x. Nothing is
asserted: it prints.

Threads: both workers of a setting get OPENBLAS_NUM_THREADS = OMP_NUM_THREADS = the setting (and
torch.set_num_threads). On a machine shared with other work the 1-thread figures are the steadier
ones: a multi-threaded call waits for its slowest thread, and a thread that loses its core stalls
it. If the environment sets OPENBLAS_CORETYPE, run this command with it (and OPENBLAS_L2_SIZE)
unset to measure NumPy's best kernel (see the project README).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

VOCAB, CONTEXT = 65, 64  # a character vocabulary (tiny Shakespeare has 65) and the context length

NETWORKS = {
    "mlp": ("MLP 784-512-512-10, batch 128", (128, 784), 1.3),
    "cnn": ("LeNet-5 CNN 1x28x28, batch 64", (64, 1, 28, 28), 2.0),
    "gpt": ("GPT 4x128 (4 heads), 32x64 tokens", (32, CONTEXT), 1.3),
    "lstm": ("CharLSTM 2x256, 32x64 tokens", (32, CONTEXT), 1.5),
}
LANGUAGE = ("gpt", "lstm")  # token ids in, a next-token target at every position
STEPS_PER_BATCH = 10
PAUSE = 0.25  # seconds between batches: OpenBLAS workers spin for ~0.1 s after a call before sleeping


def build(name: str, lib: Any) -> Any:
    """The MLP or CNN `name` built from `lib` (extensor.nn or torch.nn): same layers, same names."""
    if name == "mlp":
        return lib.Sequential(
            lib.Linear(784, 512), lib.ReLU(), lib.Linear(512, 512), lib.ReLU(), lib.Linear(512, 10)
        )
    return lib.Sequential(
        lib.Conv2d(1, 6, 5, padding=2), lib.ReLU(), lib.MaxPool2d(2),
        lib.Conv2d(6, 16, 5), lib.ReLU(), lib.MaxPool2d(2),
        lib.Flatten(),
        lib.Linear(400, 120), lib.ReLU(), lib.Linear(120, 84), lib.ReLU(), lib.Linear(84, 10),
    )  # fmt: skip


def build_extensor(name: str) -> Any:
    """The extensor network `name`."""
    from extensor import models, nn

    if name == "gpt":
        return models.GPT(VOCAB, block_size=CONTEXT, n_layer=4, n_head=4, n_embd=128)
    if name == "lstm":
        return models.CharLSTM(VOCAB, block_size=CONTEXT, embedding_dim=64, hidden_size=256, num_layers=2)
    return build(name, nn)


def build_torch(name: str) -> Any:
    """The torch network `name`: for the language models a twin of extensor's with the same names.

    GPT: token + position embeddings, pre-norm blocks (``x + attn(ln_1(x))``, ``x + mlp(ln_2(x))``)
    of causal nn.MultiheadAttention and a GELU MLP, a final LayerNorm, the head tied to the token
    embedding (``h @ token_embedding.weight.T``). CharLSTM: nn.Embedding, nn.LSTM, nn.Linear.
    """
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, width: int, heads: int) -> None:
            super().__init__()
            self.ln_1 = nn.LayerNorm(width)
            self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
            self.ln_2 = nn.LayerNorm(width)
            self.mlp = nn.Sequential(
                nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width), nn.Dropout(0.0)
            )
            future = torch.ones(CONTEXT, CONTEXT, dtype=torch.bool).triu(1)
            self.register_buffer("future", future, persistent=False)

        def forward(self, x: Any) -> Any:
            normed = self.ln_1(x)
            mask = self.future[: x.shape[1], : x.shape[1]]  # is_causal needs the mask as a hint
            attended, _ = self.attn(
                normed, normed, normed, attn_mask=mask, need_weights=False, is_causal=True
            )
            x = x + attended
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.token_embedding = nn.Embedding(VOCAB, 128)
            self.position_embedding = nn.Embedding(CONTEXT, 128)
            self.blocks = nn.ModuleList(Block(128, 4) for _ in range(4))
            self.ln_f = nn.LayerNorm(128)

        def forward(self, ids: Any) -> Any:
            h = self.token_embedding(ids) + self.position_embedding(torch.arange(ids.shape[1]))
            for block in self.blocks:
                h = block(h)
            return self.ln_f(h) @ self.token_embedding.weight.T

    class CharLSTM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(VOCAB, 64)
            self.lstm = nn.LSTM(64, 256, 2, batch_first=True)
            self.head = nn.Linear(256, VOCAB)

        def forward(self, ids: Any) -> Any:
            out, _ = self.lstm(self.embedding(ids))
            return self.head(out)

    if name == "gpt":
        return GPT()
    if name == "lstm":
        return CharLSTM()
    return build(name, nn)


def seconds_per_step(step: Callable[[], Any], count: int) -> float:
    """Mean wall time of `count` consecutive steps."""
    start = time.perf_counter()
    for _ in range(count):
        step()
    return (time.perf_counter() - start) / count


def extensor_steps(folder: Path, names: list[str]) -> dict[str, Callable[[], float]]:
    """One training step (without the optimizer) per network, in extensor; each returns its loss."""
    from extensor import Tape, nn

    steps = {}
    for name in names:
        data = np.load(folder / f"{name}.npz")
        model = build_extensor(name)
        model.load_state_dict({key[2:]: data[key] for key in data.files if key.startswith("w.")})
        x, y, criterion = data["x"], data["y"], nn.CrossEntropyLoss()
        classes = VOCAB if name in LANGUAGE else 10

        def step(
            model: Any = model, x: Any = x, y: Any = y, criterion: Any = criterion, classes: int = classes
        ) -> float:
            model.zero_grad()
            tape = Tape()
            with tape:
                loss = criterion(model(x).reshape(-1, classes), y.reshape(-1))
            tape.backward(loss)
            return float(loss.data)

        steps[name] = step
    return steps


def torch_steps(folder: Path, names: list[str], threads: int) -> dict[str, Callable[[], float]]:
    """The same steps in PyTorch."""
    import torch

    torch.set_num_threads(threads)
    steps = {}
    for name in names:
        data = np.load(folder / f"{name}.npz")
        model = build_torch(name)
        model.load_state_dict(
            {key[2:]: torch.from_numpy(data[key]) for key in data.files if key.startswith("w.")}
        )
        x, y, criterion = (
            torch.from_numpy(data["x"]),
            torch.from_numpy(data["y"]),
            torch.nn.CrossEntropyLoss(),
        )
        classes = VOCAB if name in LANGUAGE else 10

        def step(
            model: Any = model, x: Any = x, y: Any = y, criterion: Any = criterion, classes: int = classes
        ) -> float:
            model.zero_grad(set_to_none=True)
            loss = criterion(model(x).reshape(-1, classes), y.reshape(-1))
            loss.backward()
            return float(loss.detach())

        steps[name] = step
    return steps


def worker(library: str, folder: Path, names: list[str], threads: int) -> None:
    """Serve the coordinator: report the first losses, then for each network name read on stdin
    print the seconds per step."""
    extensor = library == "extensor"
    steps = extensor_steps(folder, names) if extensor else torch_steps(folder, names, threads)
    losses = {name: step() for name, step in steps.items()}  # the weights do not change between steps
    for step in steps.values():  # warm-up: compilation, allocator, thread pools
        seconds_per_step(step, 5)
    print(json.dumps(losses), flush=True)
    for line in sys.stdin:
        print(seconds_per_step(steps[line.strip()], STEPS_PER_BATCH), flush=True)


def write_inputs(folder: Path, names: list[str]) -> None:
    """Weights (extensor's default initialisation, seed 0) and one batch per network, as .npz files."""
    from extensor.core.random import manual_seed

    manual_seed(0)
    rng = np.random.default_rng(0)
    for name in names:
        shape = NETWORKS[name][1]
        weights = {f"w.{key}": np.array(value) for key, value in build_extensor(name).state_dict().items()}
        if name in LANGUAGE:
            x, y = rng.integers(0, VOCAB, shape), rng.integers(0, VOCAB, shape)
        else:
            x, y = rng.standard_normal(shape, dtype=np.float32), rng.integers(0, 10, shape[0])
        np.savez(folder / f"{name}.npz", x=x, y=y, **weights)


def measure(folder: Path, names: list[str], threads: int, rounds: int) -> list[dict[str, Any]]:
    """Run both workers with `threads` threads and time every network over `rounds` rounds."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    workers = {
        library: subprocess.Popen(
            [sys.executable, __file__, "--worker", library, str(folder), str(threads), ",".join(names)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for library in ("extensor", "torch")
    }
    try:
        losses = {}
        for library, process in workers.items():
            assert process.stdout is not None
            losses[library] = json.loads(process.stdout.readline())
        for network in names:
            ours, theirs = losses["extensor"][network], losses["torch"][network]
            if not abs(ours - theirs) <= 1e-4 * max(1.0, abs(theirs)):
                print(f"warning: {network} losses differ: extensor {ours:.6f}, torch {theirs:.6f}")

        def ask(library: str, network: str) -> float:
            process = workers[library]
            assert process.stdin is not None and process.stdout is not None
            time.sleep(PAUSE)  # let the other worker's idle BLAS/OpenMP threads stop spinning
            process.stdin.write(network + "\n")
            process.stdin.flush()
            return float(process.stdout.readline())

        rows = []
        for network in names:
            title, _, target = NETWORKS[network]
            ours, theirs, ratios = [], [], []
            for r in range(rounds):
                order = ("extensor", "torch") if r % 2 == 0 else ("torch", "extensor")
                times = {library: ask(library, network) for library in order}
                ours.append(times["extensor"])
                theirs.append(times["torch"])
                ratios.append(times["extensor"] / times["torch"])
            rows.append({
                "name": title, "threads": threads, "target": target, "ratio": statistics.median(ratios),
                "extensor_ms": statistics.median(ours) * 1e3, "torch_ms": statistics.median(theirs) * 1e3,
            })  # fmt: skip
        return rows
    finally:
        for process in workers.values():
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds instead of 15")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to measure")
    parser.add_argument(
        "--networks", nargs="+", choices=list(NETWORKS), default=list(NETWORKS), help="networks to time"
    )
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        library, folder, threads, names = args.worker
        worker(library, Path(folder), names.split(","), int(threads))
        return
    rounds = 5 if args.quick else 15
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs, {rounds} rounds of {STEPS_PER_BATCH} steps each")
    if os.environ.get("OPENBLAS_CORETYPE"):
        coretype = os.environ["OPENBLAS_CORETYPE"]
        print(f"note: OPENBLAS_CORETYPE={coretype} is set; NumPy may not use its best kernel")
    names = list(args.networks)
    with tempfile.TemporaryDirectory() as folder:
        write_inputs(Path(folder), names)
        rows = [row for threads in args.threads for row in measure(Path(folder), names, threads, rounds)]
    print("\n| network | threads | extensor ms/step | torch ms/step | ratio | target |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['name']} | {row['threads']} | {row['extensor_ms']:.2f} | {row['torch_ms']:.2f} | "
            f"{row['ratio']:.2f}x | <= {row['target']}x |"
        )


if __name__ == "__main__":
    main()
