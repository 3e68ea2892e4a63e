"""`cnnscope.explore(model)`: the explorer on a model object from Python (a notebook), in a thread.

The command line's `cnnscope explore` loads a checkpoint and serves until Ctrl+C; here the
model is already in memory (a `CNN`, or any PyTorch CNN wrapped by `cnnscope.from_torch`) and
the call returns at once with a handle whose `stop()` ends the server. The server binds
127.0.0.1 only and refuses foreign Host headers, as the command does. The explorer works on an
eval-mode `inference_copy` of the model, so the caller's model (its train/eval flag, its hooks,
its parameters) is never changed.
"""

from __future__ import annotations

import webbrowser
from pathlib import Path

from cnnscope.errors import UserError
from cnnscope.nn.inference import inference_copy

EXPLORER_INPUT = (1, 28, 28)  # the page draws and shows MNIST digits


class ExplorerHandle:
    """A running explorer: `url`, `stop()`; also a context manager (`with cnnscope.explore(m) as e:`)."""

    def __init__(self, server_thread, explorer, url: str):
        self._server = server_thread
        self._explorer = explorer
        self.url = url
        self.running = True

    def stop(self) -> None:
        """Stop the server, let the test-set pass started with it finish (no torch work is left
        running in a thread) and free the port; a second call does nothing."""
        if self.running:
            self._server.__exit__(None, None, None)
            self._explorer.test_stats()
            self.running = False

    def __enter__(self) -> ExplorerHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"cnnscope explorer at {self.url} ({'running' if self.running else 'stopped'})"

    def _repr_html_(self) -> str:
        state = "running; call .stop() to end it" if self.running else "stopped"
        return f'cnnscope explorer: <a href="{self.url}/" target="_blank">{self.url}/</a> ({state})'


def explore(model, *, port: int = 0, open_browser: bool = True, mnist=None, config: dict | None = None,
            cache_dir: str | Path | None = None) -> ExplorerHandle:
    """Start the explorer on `model` in a background thread and return at once.

    Args:
        model: a `CNN` or a `from_torch` model taking 1 x 28 x 28 images.
        port: TCP port on 127.0.0.1 (default 0: any free port; the handle's `url` tells which).
        open_browser: open the page in the default web browser.
        mnist: the data set whose test split the page explores (default `load_mnist()`).
        config: a checkpoint config whose recipe and metrics the page shows (optional).
        cache_dir: folder for cached OIPs (default `$CNNSCOPE_HOME/explore`).

    Returns:
        An `ExplorerHandle`; call `stop()` when done.

    Example:
        >>> explorer = cnnscope.explore(model)
        >>> explorer.url
        'http://127.0.0.1:41235'
        >>> explorer.stop()
    """
    if not 0 <= int(port) <= 65535:
        raise UserError(f"port must be 0..65535, got {port}", "port")
    shape = (model.spec.in_channels, model.spec.image_size, model.spec.image_size)
    if shape != EXPLORER_INPUT:
        raise UserError(f"the explorer shows 28x28 MNIST digits: the model must take 1x28x28 images, this one takes "
                        f"{shape[0]}x{shape[1]}x{shape[2]}", "model")
    try:
        from cnnscope.app.explorer.server import ServerThread
        from cnnscope.app.explorer.web import create_app
    except ImportError:
        raise UserError("the explorer needs FastAPI and uvicorn: pip install 'cnnscope[web]'") from None
    from cnnscope.app.explorer.hosts import LOOPBACK_HOSTS
    from cnnscope.data.mnist import cnnscope_home, load_mnist

    mnist = mnist if mnist is not None else load_mnist()
    cache = Path(cache_dir).expanduser() if cache_dir is not None else cnnscope_home() / "explore"
    app = create_app(inference_copy(model), config or {}, mnist, cache, precompute=True, allowed_hosts=LOOPBACK_HOSTS)
    server = ServerThread(app, "127.0.0.1", int(port))
    try:
        url = server.__enter__()
    except BaseException:
        server.sock.close()
        raise
    if open_browser:
        webbrowser.open(url + "/")
    return ExplorerHandle(server, app.state.explorer, url)
