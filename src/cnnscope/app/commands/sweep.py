"""`cnnscope sweep`: train a grid of runs (seeds, recipes, any training option) as Ray tasks."""

from __future__ import annotations

from pathlib import Path

from cnnscope.app.commands import add_data_option

NAME = "sweep"
ORDER = 12
HELP = "train a grid of runs (seeds, recipes, options) in parallel on Ray, locally or on a cluster"
DESCRIPTION = (
    "Train every combination of the grid's values, each run a Ray task with one torch thread in its "
    "own checkpoint folder under --out. Re-running the same sweep skips finished runs and resumes "
    "interrupted ones; a failing run is reported and the others go on. At the end sweep.csv and "
    "sweep.json list every run's settings and metrics; `cnnscope compare OUT` compares all runs. "
    "Needs Ray: pip install 'cnnscope[cluster]'."
)


def add_arguments(parser) -> None:
    parser.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2",
                        help="a training option and its values, e.g. seed=0,1,2 or lr=1e-3,2e-3 or recipe=default,seed "
                             "(repeatable; one value sets it for every run, e.g. epochs=1)")
    parser.add_argument("--grid-file", default=None, metavar="JSON",
                        help='a JSON object of options and value lists, e.g. {"seed": [0, 1], "epochs": [2]}')
    parser.add_argument("--out", default="sweeps/sweep", metavar="DIR",
                        help="sweep folder; one checkpoint folder per run inside (default: sweeps/sweep)")
    parser.add_argument("--parallel", type=int, default=None, metavar="N",
                        help="runs at once (default: the CPU count here; unlimited on a cluster)")
    parser.add_argument("--address", default=None,
                        help="address of a running Ray cluster (e.g. auto or ray://host:10001); "
                             "default: start Ray on this machine and stop it afterwards")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and exit")
    add_data_option(parser)


def run(args) -> int:
    import time

    from cnnscope.app.parsing import parse_grid
    from cnnscope.errors import UserError
    from cnnscope.files import check_output_folder
    from cnnscope.training.sweep import grid_runs, import_ray, run_sweep

    started = time.perf_counter()
    runs = grid_runs(parse_grid(args.grid, args.grid_file))
    out = Path(args.out).expanduser()
    if args.dry_run:
        for run in runs:
            print(f"{run.name}: {run.settings.describe()}")
        return 0
    if args.data is not None and not Path(args.data).expanduser().exists():
        raise UserError(f"data path {args.data} does not exist (expected mnist.npz or a folder of IDX files)", "data")
    check_output_folder(out)
    import_ray()  # says how to install Ray before anything else happens
    print(f"sweep of {len(runs)} runs into {out}")
    results = run_sweep(runs, out, data=args.data, parallel=args.parallel, address=args.address)
    failed = [r for r in results if r.status == "failed"]
    skipped = sum(r.status == "skipped" for r in results)
    print(f"{len(results) - len(failed) - skipped} trained, {skipped} finished before, {len(failed)} failed; "
          f"table: {out / 'sweep.csv'} ({time.perf_counter() - started:.0f} s)")
    for result in failed:
        print(f"  failed: {result.run.name}: {result.error}")
    return 1 if failed else 0
