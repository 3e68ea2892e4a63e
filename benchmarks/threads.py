"""The thread policy, measured: one thread against two, on a quiet machine and with a competitor.

For each condition (no competing process, one, two; each keeps one core busy with a
single-threaded matrix multiply) and each thread count (1, 2), a fresh worker process runs
the same work -- an OIP batch of Conv2D_3 maps (the articles' rule) and training steps of the
default recipe -- and reports its wall time. The thread counts alternate within each round; medians
are printed with the load average the policy (`cnnscope.runtime.default_threads`) saw and the
count it picked, so the table shows what the policy costs or gains in each condition. Each worker
also times the plain eager batched loop of the same OIPs and measures the floor (`floor.py`)
under the same condition.

    .venv/bin/python benchmarks/threads.py [--rounds 3] [--maps 32] [--steps 150]

The 1-minute load average lags: the script lets the competitor run `--settle` seconds before
measuring. Quote the load average of the machine as a whole when the figures are used.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[4])
import cnnscope
import torch
from cnnscope.runtime import default_threads, free_cores
from floor import Floor
from oip_speed import plain_batched_loop
threads, maps, steps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
picked = default_threads()
torch.set_num_threads(threads)
model, _ = cnnscope.load_model()
from cnnscope.optvis.ascent import AscentSettings
from cnnscope.optvis.oip import start_seed
from cnnscope.optvis.starts import multiscale_noise
targets = cnnscope.map_objectives(model, "Conv2D_3", list(range(maps)))
started = time.perf_counter()
run = cnnscope.find_oips(model, targets, AscentSettings(steps=steps))
oip = time.perf_counter() - started
starts = multiscale_noise(maps, seeds=[start_seed(0, t, 0) for t in targets])
started = time.perf_counter()
plain_batched_loop(model, "Conv2D_3", starts, steps)
oip_plain = time.perf_counter() - started
oip_floor = Floor.measure(model, "Conv2D_3", batch=maps, threads=threads).seconds(float(run.steps_used.sum() + maps))
net = cnnscope.CNN()
opt = torch.optim.Adam(net.parameters(), 1e-3)
x, y = torch.rand(128, 1, 28, 28), torch.randint(0, 10, (128,))
started = time.perf_counter()
for _ in range(30):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    opt.step()
train = time.perf_counter() - started
train_floor = Floor.measure(net, None, batch=128, threads=threads, backward="all").seconds(30 * 128)
print(json.dumps({"oip": oip, "oip_plain": oip_plain, "oip_floor": oip_floor, "train": train,
                  "train_floor": train_floor, "picked": picked, "load": __import__("os").getloadavg()[0]}))
"""

COMPETITOR = r"""
import torch
torch.set_num_threads(1)
a = torch.rand(512, 512)
while True:
    a = (a @ a).clamp_(-1, 1)
"""


CONDITIONS = {0: "quiet", 1: "one competitor", 2: "two competitors"}


def measure(threads: int, maps: int, steps: int) -> dict:
    out = subprocess.run([sys.executable, "-c", WORKER, str(threads), str(maps), str(steps), str(Path(__file__).parent)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--maps", type=int, default=32)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--settle", type=float, default=60.0, help="seconds the competitors run before measuring")
    parser.add_argument("--competitors", default="0,1,2", help="comma-separated counts of competing processes")
    args = parser.parse_args()
    conditions = [CONDITIONS.get(int(n), f"{n} competitors") for n in args.competitors.split(",")]
    rows: dict[tuple[str, int], list[dict]] = {}
    for count, condition in zip((int(n) for n in args.competitors.split(",")), conditions, strict=True):
        competitors = [subprocess.Popen([sys.executable, "-c", COMPETITOR]) for _ in range(count)]
        if competitors:
            time.sleep(args.settle)
        try:
            for _ in range(args.rounds):
                for threads in (1, 2):
                    rows.setdefault((condition, threads), []).append(measure(threads, args.maps, args.steps))
        finally:
            for competitor in competitors:
                competitor.kill()
                competitor.wait()
    print(f"cores usable: {len(os.sched_getaffinity(0))}; work: OIPs of {args.maps} Conv2D_3 maps x {args.steps} "
          f"steps, and 30 training steps of batch 128; medians of {args.rounds} rounds")
    print("x plain: the engine against the plain eager batched loop of the same OIPs, same process; x floor: the "
          "time over FLOP / torch.mm's GFLOP/s on the work's shapes, measured in that process (the training "
          "steps are a plain loop already)")
    print(f"{'condition':16} {'threads':>7} {'OIP s':>7} {'x plain':>7} {'x floor':>7} {'train s':>8} {'x floor':>7} "
          f"{'load':>5} {'policy picks':>12}")
    keys = ("oip", "oip_plain", "oip_floor", "train", "train_floor", "load")
    for condition in conditions:
        for threads in (1, 2):
            runs = rows[(condition, threads)]
            med = {key: statistics.median(run[key] for run in runs) for key in keys}
            picks = sorted({run["picked"] for run in runs})
            print(f"{condition:16} {threads:>7} {med['oip']:7.2f} {med['oip_plain'] / med['oip']:7.2f} "
                  f"{med['oip'] / med['oip_floor']:7.1f} {med['train']:8.2f} {med['train'] / med['train_floor']:7.1f} "
                  f"{med['load']:5.2f} {','.join(map(str, picks)):>12}")


if __name__ == "__main__":
    main()
