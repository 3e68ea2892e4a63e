"""`cnnscope explore`: the interactive explorer in the browser (a local web server)."""

from __future__ import annotations

from cnnscope.app.commands import add_common_options
from cnnscope.app.explorer.hosts import LOOPBACK_HOSTS, is_loopback

NAME = "explore"
ORDER = 60
HELP = "start the interactive explorer: draw a digit and watch every layer respond (local web page)"


def add_arguments(parser) -> None:
    add_common_options(parser)
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; anything else needs --allow-remote)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow binding a non-loopback address (the page has no login: anyone who reaches it can use it)")
    parser.add_argument("--cache", default=None, metavar="DIR",
                        help="folder for cached OIPs (default: $CNNSCOPE_HOME/explore)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: fastest for one-image updates on a busy machine)")


def check_arguments(args) -> None:
    """UserError for a bad port, a remote bind without --allow-remote, or a bad thread count."""
    from cnnscope.errors import UserError, check_whole

    if not 0 <= args.port <= 65535:
        raise UserError(f"port must be 0..65535, got {args.port}")
    if not is_loopback(args.host) and not args.allow_remote:
        raise UserError(f"refusing to bind {args.host!r}: the explorer has no login; "
                        "use 127.0.0.1 (default) or pass --allow-remote to expose it on your network")
    check_whole("threads", args.threads, minimum=1)


def run(args) -> int:
    check_arguments(args)
    try:
        import uvicorn

        from cnnscope.app.explorer.server import bind_socket
        from cnnscope.app.explorer.web import create_app
    except ImportError:
        from cnnscope.errors import UserError

        raise UserError("the explorer needs FastAPI and uvicorn: pip install 'cnnscope[web]'") from None
    from pathlib import Path

    import torch

    from cnnscope.data.mnist import cnnscope_home, load_mnist_for_model
    from cnnscope.nn.checkpoint import load_model
    from cnnscope.runtime import pick_device

    sock = bind_socket(args.host, args.port)  # first: a busy port is a one-line error, before any loading
    try:
        device = pick_device(args.device)
        model, config = load_model(args.model, device=device)
        mnist = load_mnist_for_model(config, args.data)  # the model's split, so test indices match
        cache = Path(args.cache).expanduser() if args.cache else cnnscope_home() / "explore"
        torch.set_num_threads(args.threads)
        # on loopback, only loopback names are accepted in the Host header (no DNS rebinding)
        hosts = (*LOOPBACK_HOSTS, args.host) if is_loopback(args.host) else None
        app = create_app(model, config, mnist, cache, precompute=True, allowed_hosts=hosts)
    except BaseException:
        sock.close()
        raise
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"cnnscope explorer: http://{shown}:{port}/  (model {args.model or 'default'}; Ctrl+C to stop)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])
    return 0
