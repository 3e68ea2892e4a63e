"""Speed of the batched OIP engine against the articles' one-map-at-a-time loop, same process.

Target (issue 4): all 128 maps of Conv2D_3, 600 steps, one start each, <= 15 s on the 2-core
machine, and >= 10x faster than the articles' loop.

Baseline: the articles' loop (article VIII) written plainly in PyTorch -- one image, one map
at a time: loss = mean of the map, gradient / (RMS + 1e-7), x += 0.01 * g, per-image
standardisation, stop after more than 10 zero steps. It runs on an evenly spaced sample of
maps (`--baseline-maps`); the engine runs the same sample in one batch (same-work ratio) and
all maps (the extrapolated ratio uses the baseline's time per map x the number of maps).

`--coverage` also measures the coverage counts: live maps (fire on a test image), maps that
react with the articles' defaults, with `--precursor/--restarts`, and how many live maps get
an OIP above their dataset max.

Usage: .venv/bin/python benchmarks/oip_speed.py [--model DIR] [--repeats N] [--threads N] [--coverage]
Timings are medians; on a shared machine quote them as "measured under load".
"""

from __future__ import annotations  # noqa: I001  (cnnscope before torch)

import cnnscope  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads)
import argparse
import contextlib
import os
import statistics
import time

import torch


def median_time(fn, repeats: int) -> tuple[float, float, object]:
    """Median wall seconds, median CPU seconds of this process, and the last result."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def articles_loop(model, layer: str, map_index: int, start: torch.Tensor, steps: int = 600,
                  epsilon: float = 0.01) -> tuple[float, bool]:
    """Article VIII's `_oip_strat_0_optimization_loop` for one map (PyTorch, no batching)."""
    from cnnscope.nn.model import per_image_standardize

    prefix = model.prefix(layer, normalize=False)
    x = start.clone()
    n_zeros = 0
    loss = torch.zeros(())
    for _ in range(steps):
        x.requires_grad_(True)
        loss = prefix(x)[0, map_index].mean()
        (grads,) = torch.autograd.grad(loss, x)
        grads = grads / (grads.pow(2).mean().sqrt() + 1e-7)
        if float(loss.detach()) == 0.0 and float(grads.mean()) == 0.0:
            n_zeros += 1
        if n_zeros > 10:  # "Try a different initial random distribution of pixel values"
            return 0.0, False
        x = per_image_standardize(x.detach() + grads * epsilon)
    return float(loss.detach()), True


def plain_batched_loop(model, layer: str, starts: torch.Tensor, steps: int = 600, epsilon: float = 0.01,
                       first_map: int = 0) -> torch.Tensor:
    """The articles' rule for all maps at once in a plain eager loop (image i chases map
    `first_map + i`, every image runs every step): the plain-PyTorch baseline of the whole zoo.
    Returns the final values."""
    from cnnscope.nn.model import per_image_standardize

    prefix = model.prefix(layer, normalize=False).eval()
    for parameter in prefix.parameters():
        parameter.requires_grad_(False)
    x, rows = starts.clone(), torch.arange(starts.shape[0])
    maps = rows + first_map
    for _ in range(steps):
        x.requires_grad_(True)
        values = prefix(x)[rows, maps].mean(dim=(-2, -1))
        (grads,) = torch.autograd.grad(values.sum(), x)
        grads = grads / (grads.pow(2).flatten(1).mean(dim=1).sqrt().view(-1, 1, 1, 1) + 1e-7)
        x = per_image_standardize(x.detach() + grads * epsilon)
    with torch.no_grad():
        return prefix(x)[rows, maps].mean(dim=(-2, -1))


def relative_gaps(values: torch.Tensor, reference: torch.Tensor, keep: torch.Tensor) -> str:
    gap = ((values - reference).abs() / reference.abs().clamp_min(1e-6))[keep]
    return (f"within 1e-4 relative: {int((gap <= 1e-4).sum())} of {gap.numel()}, largest {float(gap.max()):.1e}, "
            f"median {float(gap.median()):.1e}")


def spread_of_the_plain_loop(model, layer: str, starts: torch.Tensor, steps: int, final: torch.Tensor,
                             keep: torch.Tensor) -> str:
    """How far the plain loop's own final values move when only its kernels change (the zoo in two
    halves of the batch, the other thread count) and when every start pixel moves by one ulp (what
    any other kernel's rounding does to the first step): the precision any comparison with it has."""
    half = starts.shape[0] // 2
    halves = torch.cat([plain_batched_loop(model, layer, starts[:half], steps),
                        plain_batched_loop(model, layer, starts[half:], steps, first_map=half)])
    threads = torch.get_num_threads()
    torch.set_num_threads(2 if threads == 1 else 1)
    try:
        other_threads = plain_batched_loop(model, layer, starts, steps)
    finally:
        torch.set_num_threads(threads)
    one_ulp = plain_batched_loop(model, layer, torch.nextafter(starts, torch.full_like(starts, float("inf"))), steps)
    return (f"the plain loop against itself (its reacted maps' final values):\n"
            f"  in two halves of the batch: {relative_gaps(halves, final, keep)}\n"
            f"  on {2 if threads == 1 else 1} threads:        {relative_gaps(other_threads, final, keep)}\n"
            f"  every start pixel 1 ulp up: {relative_gaps(one_ulp, final, keep)} (the chaos a kernel's "
            f"last-bit differences meet)")


@contextlib.contextmanager
def plain_network():
    """The engine on the plain network (the model's own layers, no `FastCNN`): the engine as it
    was before issue 17, for the same-run ratio of what `FastCNN` adds."""
    from cnnscope.nn.inference import inference_copy
    from cnnscope.optvis import ascent, networks

    def plain(model, device):
        return networks.PlainNetwork(inference_copy(model, channels_last=device.type == "cpu"))

    saved, ascent.ascent_network = ascent.ascent_network, plain
    try:
        yield
    finally:
        ascent.ascent_network = saved


def main() -> int:
    from floor import Floor

    from cnnscope.data.mnist import load_mnist, to_tensor
    from cnnscope.nn.checkpoint import load_model
    from cnnscope.optvis.ascent import AscentSettings
    from cnnscope.optvis.oip import add_dataset_max, find_oips, map_objectives, quality, start_seed
    from cnnscope.optvis.starts import multiscale_noise
    from cnnscope.runtime import default_threads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the default model)")
    parser.add_argument("--layer", default="Conv2D_3")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-maps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: the CLI's, 1 on machines with <= 2 cores)")
    parser.add_argument("--coverage", action="store_true", help="also measure coverage counts")
    parser.add_argument("--precursor", type=int, default=16)
    parser.add_argument("--restarts", type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads or default_threads())
    model, _ = load_model(args.model)
    n_maps = model.output_shape(args.layer)[0]
    settings = AscentSettings(steps=args.steps)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"model {args.model or 'default'}, layer {args.layer} ({n_maps} maps), {args.steps} steps, "
          f"medians of {args.repeats}")

    sample = sorted({round(i * n_maps / args.baseline_maps) for i in range(args.baseline_maps)})
    targets = map_objectives(model, args.layer)
    sample_targets = [targets[m] for m in sample]
    starts = {m: multiscale_noise(1, seeds=[start_seed(0, targets[m], 0)]) for m in sample}

    def baseline():
        return [articles_loop(model, args.layer, m, starts[m], args.steps) for m in sample]

    base_time, base_cpu, base_out = median_time(baseline, args.repeats)
    same_time, same_cpu, same_run = median_time(lambda: find_oips(model, sample_targets, settings), args.repeats)
    all_time, all_cpu, all_run = median_time(lambda: find_oips(model, targets, settings), args.repeats)
    with plain_network():
        old_time, _, old_run = median_time(lambda: find_oips(model, targets, settings), args.repeats)
    zoo_starts = multiscale_noise(n_maps, seeds=[start_seed(0, t, 0) for t in targets])
    plain_time, _, plain_final = median_time(lambda: plain_batched_loop(model, args.layer, zoo_starts, args.steps),
                                             args.repeats)
    floor = Floor.measure(model, args.layer, batch=n_maps, threads=torch.get_num_threads(), backward="input")
    scale = n_maps / len(sample)
    agree = max(abs(v - float(same_run.final[i])) / max(abs(v), 1e-6) for i, (v, _) in enumerate(base_out))
    print("\n                                         wall s    CPU s   (CPU s: all threads of this process)")
    print(f"articles' loop, {len(sample)} maps one by one:  {base_time:8.2f} {base_cpu:8.2f}   "
          f"({sum(r for _, r in base_out)} reacted)")
    print(f"engine, the same {len(sample)} maps in one batch: {same_time:8.2f} {same_cpu:8.2f}   "
          f"-> ratio {base_time / same_time:5.1f}x wall")
    print(f"engine, all {n_maps} maps in one batch:     {all_time:8.2f} {all_cpu:8.2f}   "
          f"(target <= 15 s wall; {int(all_run.reacted.sum())} reacted)")
    print(f"articles' loop x {scale:g} (all {n_maps} maps):    {base_time * scale:8.2f} {base_cpu * scale:8.2f}   "
          f"-> ratio {base_time * scale / all_time:5.1f}x wall, {base_cpu * scale / all_cpu:5.1f}x CPU (target >= 10x)")
    print(f"largest relative difference of final values, loop vs engine: {agree:.2e}")
    gap = ((all_run.final - old_run.final).abs() / old_run.final.abs().clamp_min(1e-6))[old_run.reacted]
    print(f"engine on the plain network (before FastCNN), all {n_maps} maps: {old_time:8.2f} s wall -> FastCNN "
          f"{old_time / all_time:.2f}x; reacted maps {'identical' if torch.equal(old_run.reacted, all_run.reacted) else 'DIFFER'}"
          f"; final values within 1e-4 relative: {int((gap <= 1e-4).sum())} of {gap.numel()}, within 1e-3: "
          f"{int((gap <= 1e-3).sum())}, largest {float(gap.max()):.1e}, median {float(gap.median()):.1e}")
    reacted = all_run.reacted
    plain_gap = float(((plain_final - all_run.final).abs() / all_run.final.abs().clamp_min(1e-6))[reacted].max())
    print(f"\nplain eager batched loop, all {n_maps} maps x {args.steps} steps: {plain_time:8.2f} s wall "
          f"(largest relative difference of the reacted maps' final values to the engine: {plain_gap:.1e})")
    print(spread_of_the_plain_loop(model, args.layer, zoo_starts, args.steps, plain_final, reacted))
    print(floor.header())
    print(f"engine, all {n_maps} maps: {floor.describe(float(all_run.steps_used.sum() + n_maps), all_time, plain_time)} "
          f"(target >= 2.5x plain)")
    print(f"plain loop: {floor.describe(float(n_maps * (args.steps + 1)), plain_time)}")

    if args.coverage:
        mnist = load_mnist()
        test = to_tensor(mnist.test_x)
        started = time.perf_counter()
        robust = find_oips(model, targets, settings, precursor=args.precursor, restarts=args.restarts)
        robust_time = time.perf_counter() - started
        add_dataset_max(all_run, model, test)
        robust.dataset_max, robust.dataset_argmax = all_run.dataset_max, all_run.dataset_argmax
        plain_q, robust_q = quality(all_run), quality(robust)
        print(f"\ncoverage ({args.layer}, {n_maps} maps; dataset max over {len(test)} test images):")
        print(f"  live maps (fire on at least one test image): {plain_q['live']}")
        print(f"  reacted, articles' defaults:                 {plain_q['reacted']} "
              f"({plain_q['live_with_oip']} live; {plain_q['beats_dataset_max']} beat their dataset max)")
        print(f"  reacted, precursor {args.precursor} + restarts {args.restarts}:       {robust_q['reacted']} "
              f"({robust_q['live_with_oip']} of {robust_q['live']} live; {robust_q['beats_dataset_max']} beat their "
              f"dataset max = {100 * robust_q['share_live_beating_dataset_max']:.1f}%) in {robust_time:.1f} s")
        print(f"  median OIP / dataset max: {plain_q['median_oip_over_dataset_max']} (defaults), "
              f"{robust_q['median_oip_over_dataset_max']} (precursor)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
