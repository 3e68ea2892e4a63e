"""A small version of `benchmarks/web_load.py`: clients drawing and browsing while OIPs compute,
against a real uvicorn server on a free port. Every request must succeed (no timing thresholds)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("httpx")
pytest.importorskip("fastapi")
from cnnscope.app.explorer.oips import OipSettings  # noqa: E402
from cnnscope.app.explorer.server import ServerThread  # noqa: E402
from cnnscope.app.explorer.web import create_app  # noqa: E402
from cnnscope.nn.checkpoint import load_checkpoint  # noqa: E402

BENCHMARK = Path(__file__).parents[2] / "benchmarks" / "web_load.py"


def load_benchmark():
    spec = importlib.util.spec_from_file_location("web_load", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_concurrent_drawing_and_browsing_during_an_oip_computation_has_no_errors(small_model_dir, mnist, tmp_path):
    web_load = load_benchmark()
    model, config = load_checkpoint(small_model_dir)
    app = create_app(model, config, mnist, tmp_path / "cache", oip_settings=OipSettings(steps=20, restarts=1, seed=0))
    with ServerThread(app) as url:
        figures = web_load.run_load(url, clients=3, requests=12, oip_chunks=1, bodies=web_load.draw_bodies(4))
    assert figures["errors"] == []
    assert {kind: len(values) for kind, values in figures["latency"].items()} == {
        "draw": 9, "test view": 9, "test png": 9, "top images": 9, "oip": 1}
    assert len(list((tmp_path / "cache").rglob("*.png"))) == 16  # the chunk's OIPs were computed and cached
