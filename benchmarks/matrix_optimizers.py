"""Step time of the optimizers that do matrix work — Adafactor (factored second moments) and Muon
(Newton–Schulz orthogonalisation) — against torch.optim's, each library in its own process.

    python benchmarks/matrix_optimizers.py            # 7 rounds
    python benchmarks/matrix_optimizers.py --quick    # 3 rounds

Parameter sets (float32):

- ``4096x4096``: one 4096x4096 matrix (16.8M parameters);
- ``resnet50``: ResNet-50's 161 tensors (25.6M parameters: 4-D convolutions, 1-D norms, the 2048x1000
  classifier) — Adafactor only, since Muon takes 2-D parameters alone (torch's refuses the others too);
- ``transformer``: the 2-D weights of a 12-layer, 768-wide Transformer (4 matrices of 768x768 and two of
  768x3072 per layer, 85M parameters) — Muon's intended use.

A worker builds the parameters and gradients, steps once to warm up, then times `steps` steps; the
coordinator alternates the libraries over rounds and prints the median time per step and the median
of per-round ratios extensor / torch. Target: ≤ 1.0x. Nothing is asserted: it prints.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

THREADS = 2


def resnet50_shapes() -> list[tuple[int, ...]]:
    """The parameter shapes of torchvision's ResNet-50 (161 tensors), written out."""
    shapes: list[tuple[int, ...]] = [(64, 3, 7, 7), (64,), (64,)]
    inplanes = 64
    for planes, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for block in range(blocks):
            width, out = planes, planes * 4
            shapes += [(width, inplanes, 1, 1), (width,), (width,), (width, width, 3, 3), (width,), (width,)]
            shapes += [(out, width, 1, 1), (out,), (out,)]
            if block == 0:
                shapes += [(out, inplanes, 1, 1), (out,), (out,)]
            inplanes = out
    return [*shapes, (1000, 2048), (1000,)]


def transformer_shapes() -> list[tuple[int, ...]]:
    """The 2-D weights of a 12-layer Transformer of width 768 (attention q, k, v, o and the MLP)."""
    return [shape for _ in range(12) for shape in [(768, 768)] * 4 + [(3072, 768), (768, 3072)]]


SETS = {
    "4096x4096": ([(4096, 4096)], ("Adafactor", "Muon")),
    "resnet50": (resnet50_shapes(), ("Adafactor",)),
    "transformer": (transformer_shapes(), ("Muon",)),
}
OPTIONS = {"Adafactor": {"lr": 1e-2}, "Muon": {"lr": 1e-3}}
STEPS = {"Adafactor": 5, "Muon": 2}


def worker(library: str, set_name: str, optimizer: str) -> float:
    """Seconds per step of `optimizer` of `library` on the parameter set (after one warm-up step)."""
    shapes, _ = SETS[set_name]
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
    grads = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
    if library == "torch":
        import torch

        torch.set_num_threads(THREADS)
        params = [torch.from_numpy(v).requires_grad_() for v in values]
        for p, g in zip(params, grads, strict=True):
            p.grad = torch.from_numpy(g)
        step = getattr(torch.optim, optimizer)(params, **OPTIONS[optimizer]).step
    else:
        from extensor.core.tensor import ExTensor
        from extensor.distributed import SingleProcess
        from extensor.distributed.threads import limit_threads
        from extensor.training import optimizers

        limit_threads(SingleProcess(), threads=THREADS)
        tensors = [ExTensor(v, requires_grad=True) for v in values]
        ours = getattr(optimizers, optimizer)(tensors, **OPTIONS[optimizer])
        for p, g in zip(tensors, grads, strict=True):
            p.grad = g
        step = ours.step
    step()
    start = time.perf_counter()
    for _ in range(STEPS[optimizer]):
        step()
    return (time.perf_counter() - start) / STEPS[optimizer]


def measure(rounds: int) -> None:
    rows = []
    for set_name, (shapes, names) in SETS.items():
        count = sum(int(np.prod(shape)) for shape in shapes)
        for optimizer in names:
            times: dict[str, list[float]] = {"extensor": [], "torch": []}
            for r in range(rounds):
                order = ("extensor", "torch") if r % 2 == 0 else ("torch", "extensor")
                for library in order:
                    out = subprocess.run(
                        [sys.executable, __file__, "--worker", library, set_name, optimizer],
                        check=True, capture_output=True, text=True,
                    )  # fmt: skip
                    times[library].append(json.loads(out.stdout.strip().splitlines()[-1]))
            ratios = [a / b for a, b in zip(times["extensor"], times["torch"], strict=True)]
            ours, theirs = (1e3 * statistics.median(times[name]) for name in ("extensor", "torch"))
            rows.append(
                f"| {optimizer} | {set_name} ({count / 1e6:.1f}M) | {ours:.1f} ms | {theirs:.1f} ms "
                f"| {statistics.median(ratios):.2f}x |"
            )
            print(rows[-1], flush=True)
    print("\n| optimizer | parameters | extensor | torch | ratio (target ≤ 1.0x) |\n|---|---|---|---|---|")
    print("\n".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 7")
    parser.add_argument("--worker", nargs=3, metavar=("LIBRARY", "SET", "OPTIMIZER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return
    measure(3 if args.quick else 7)


if __name__ == "__main__":
    main()
