"""torch.compile (inductor) for the ascent step and the training step, against eager, same process.

The ascent step: the forward pass to Conv2D_3 of the engine's inference copy (channels-last),
one map per image, and the input gradient -- the per-step work of an OIP zoo -- for batch
sizes 128, 100, 64 and 17 (the batch shrinks as maps stop; `dynamic=True` compiles one graph
for all of them). The training step: Adam on the default recipe's network, batches 128 and
256. Prints the first compile's cost, the steps' times (medians of alternating rounds), the
ratio eager / compiled (above 1: compile helps), the largest relative gradient difference,
and the plain-PyTorch and floor figures of the eager step. Run it twice to see the cost of a
later run: inductor's on-disk cache (TORCHINDUCTOR_CACHE_DIR, default below) then holds the
compiled graphs.

    .venv/bin/python benchmarks/compile_speed.py [--threads 1] [--skip-training]

Measured on the 2-core AVX2 machine (torch 2.13, gcc, see benchmarks/README.md): compiled
steps were 0.4x (ascent) and 0.6x (training) the speed of eager ones, so cnnscope runs eager.
"""

from __future__ import annotations  # noqa: I001  (cnnscope before torch)

import cnnscope  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path.home() / ".cache" / "cnnscope" / "inductor"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from floor import Floor  # noqa: E402


def alternate(functions: dict, calls: int, rounds: int = 5) -> dict[str, float]:
    """Median seconds per call of each function, the functions taking turns in every round."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            started = time.perf_counter()
            for _ in range(calls):
                function()
            times[name].append((time.perf_counter() - started) / calls)
    return {name: statistics.median(values) for name, values in times.items()}


def ascent_step(model, threads: int) -> None:
    from cnnscope.nn.inference import inference_copy

    prefix = inference_copy(model, channels_last=True).prefix("Conv2D_3", normalize=False)

    def values(x, maps):
        out = prefix(x)
        return out[torch.arange(out.shape[0]), maps].mean(dim=(-2, -1))

    def step(function, x, maps):
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(function(x, maps).sum(), x)
        return grad

    compiled = torch.compile(values, dynamic=True)
    x, maps = torch.randn(128, 1, 28, 28), torch.arange(128)
    started = time.perf_counter()
    grad = step(compiled, x, maps)
    print(f"ascent step: first call of the compiled step (compile) {time.perf_counter() - started:.1f} s "
          f"(cache {os.environ['TORCHINDUCTOR_CACHE_DIR']})")
    eager = step(values, x, maps)
    print(f"  largest relative gradient difference compiled vs eager: {float((grad - eager).abs().max() / eager.abs().max()):.1e}")
    floor = Floor.measure(model, "Conv2D_3", batch=128, threads=threads, backward="input")
    print(f"  {floor.header()}")
    for n in (128, 100, 64, 17):
        started = time.perf_counter()
        step(compiled, x[:n], maps[:n])
        first = time.perf_counter() - started
        medians = alternate({"eager": lambda n=n: step(values, x[:n], maps[:n]),
                             "compiled": lambda n=n: step(compiled, x[:n], maps[:n])}, calls=10)
        print(f"  batch {n:3d}: eager {medians['eager'] * 1000:6.1f} ms, compiled {medians['compiled'] * 1000:6.1f} ms "
              f"(first call {first:.2f} s), eager / compiled {medians['eager'] / medians['compiled']:.2f}; "
              f"eager {floor.describe(n, medians['eager'])}")


def training_step(threads: int) -> None:
    import numpy as np

    from cnnscope.data.mnist import load_mnist, to_tensor
    from cnnscope.training.settings import TrainSettings
    from cnnscope.training.state import new_model

    mnist = load_mnist()
    x, y = to_tensor(mnist.train_x[:20000]), torch.from_numpy(mnist.train_y[:20000].astype(np.int64))
    model = new_model(TrainSettings(), 0.13, 0.31).to(memory_format=torch.channels_last)
    plain_model = new_model(TrainSettings(), 0.13, 0.31)  # contiguous: the plain-PyTorch step
    compiled = torch.compile(model, dynamic=False)
    optimizers = {id(model): torch.optim.Adam(model.parameters(), lr=1e-3),
                  id(plain_model): torch.optim.Adam(plain_model.parameters(), lr=1e-3)}
    generator = torch.Generator().manual_seed(0)

    def step(network, weights, batch):
        index = torch.randint(0, len(y), (batch,), generator=generator)
        loss = F.cross_entropy(network(x[index]), y[index])
        optimizer = optimizers[id(weights)]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    floor = Floor.measure(model, None, batch=128, threads=threads, backward="all")
    print(f"training step: {floor.header()}")
    for batch in (128, 256):
        started = time.perf_counter()
        step(compiled, model, batch)
        first = time.perf_counter() - started
        medians = alternate({"plain": lambda b=batch: step(plain_model, plain_model, b),
                             "eager": lambda b=batch: step(model, model, b),
                             "compiled": lambda b=batch: step(compiled, model, b)}, calls=5)
        print(f"  batch {batch}: first compiled step {first:.1f} s; eager {batch / medians['eager']:.0f} img/s, "
              f"compiled {batch / medians['compiled']:.0f} img/s, eager / compiled "
              f"{medians['eager'] / medians['compiled']:.2f}; eager channels-last "
              f"{floor.describe(batch, medians['eager'], medians['plain'])}")


def main() -> int:
    from cnnscope.nn.checkpoint import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {args.threads}, load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    try:
        ascent_step(load_model(None)[0], args.threads)
        if not args.skip_training:
            training_step(args.threads)
    except Exception as error:  # no C++ compiler, an unsupported platform: say so in one line
        print(f"torch.compile is not available here ({type(error).__name__}: {str(error).splitlines()[0]})")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
