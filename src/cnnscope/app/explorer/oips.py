"""The explorer's OIPs: how they are computed (`OipSettings`), the OIPs of some maps of a layer
(with the OIP engine, `optvis.oip.find_oips`), and their cache on disk, one folder per model."""

from __future__ import annotations

import base64
import json
import math
from dataclasses import asdict, dataclass, replace
from io import BytesIO
from pathlib import Path

import numpy as np

from cnnscope import __version__
from cnnscope.app.explorer.decoding import RequestError
from cnnscope.app.explorer.encoding import COLORMAP
from cnnscope.files import save_image, sha256_hex, write_bytes, write_json
from cnnscope.nn.model import CNN

OIP_SCALE = 4  # OIP pictures are stored upscaled (nearest) 4x: 112x112
CACHE_FORMAT = 2  # part of the cache key; 2: a record has its start similarity and a .npy of the OIP


@dataclass(frozen=True)
class OipSettings:
    """How the explorer computes a map's OIP with `oip.find_oips` (part of the cache key).

    `restarts` noise starts per map, best kept; `precursor` long-range candidates per start are
    screened for `precursor_steps` steps first (the articles' "precursor"), which wakes up maps
    that stay at zero from plain noise.
    """

    steps: int = 300
    restarts: int = 2
    precursor: int = 8
    precursor_steps: int = 20
    seed: int = 0

    def key(self) -> str:
        """12 hex digits naming these settings (and the cnnscope version and cache format) in cache file names."""
        text = json.dumps({**asdict(self), "cnnscope": __version__, "format": CACHE_FORMAT}, sort_keys=True)
        return sha256_hex([text.encode()])[:12]


def weights_hash(model: CNN) -> str:
    """SHA-256 over the model's spec and weights (names, shapes, dtypes and bytes)."""
    return sha256_hex(_spec_and_weight_bytes(model))


def _spec_and_weight_bytes(model: CNN):
    yield json.dumps(model.spec.to_dict(), sort_keys=True).encode()
    for name, tensor in sorted(model.state_dict().items()):
        array = tensor.detach().to("cpu").contiguous().numpy()
        yield f"{name}:{array.dtype}:{array.shape}".encode()
        yield array.tobytes()


@dataclass
class MapOip:
    """The OIP of one map, ready for the page."""

    picture: np.ndarray  # H x W x 3 uint8, contrast-enhanced, colour-mapped, upscaled
    image: np.ndarray  # H x W float32: the OIP itself (standardised input space), for its trust figures
    value: float  # the map's mean activation reached
    reacted: bool
    steps_used: int
    start: str  # "noise" or "precursor" (a long-range candidate won)
    start_similarity: float | None  # how alike the kept start and the other one are (None: fewer than 2 reacted)


# the figures of `optvis.quality.quality_report` the page shows beside an OIP (None where undefined);
# all but start_similarity need the test-set pass
TRUST_FIGURES = ("ratio", "majority", "natural_path_mean", "outside", "clipped_ratio", "start_similarity")


def compute_map_oips(model: CNN, layer: str, maps: list[int], settings: OipSettings) -> list[MapOip]:
    """OIPs of some maps of a layer with the OIP engine (`oip.find_oips`, all maps in one batch).

    Starts are seeded by the map, not its place in the batch, so a map computed alone or within
    a zoo chunk gets the same picture.

    Args:
        model: the network.
        layer: a conv, pool or dense layer of `model`.
        maps: map (or node) indices of `layer`, already checked.
        settings: steps, restarts, precursor search and seed.

    Returns:
        One `MapOip` per map, in the order of `maps`.
    """
    from cnnscope.optvis.quality import start_similarities

    run = _find_map_oips(model, layer, maps, settings)
    similarity = start_similarities(run) or [math.nan] * len(maps)
    out = []
    for i in range(len(maps)):
        alike = None if math.isnan(similarity[i]) else round(similarity[i], 4)
        out.append(MapOip(oip_picture(run.images[i, 0]), run.images[i, 0].numpy().astype(np.float32),
                          round(float(run.final[i]), 5), bool(run.reacted[i]), int(run.steps_used[i]),
                          run.start_kind[i], alike))
    return out


def trust_figures(model: CNN, layer: str, maps: list[int], records: list[dict], images, test_images,
                  test_values) -> list[dict]:
    """The trust figures (TRUST_FIGURES) of stored OIPs, against the test images.

    Args:
        model, layer, maps: as for `compute_map_oips`.
        records: the OIPs' records (their value, whether they reacted, their start similarity).
        images: the OIPs, len(maps) x 1 x H x W (standardised input space).
        test_images: the raw [0, 1] test images, N x 1 x H x W.
        test_values: each map's mean activation on each test image, len(maps) x N.
    """
    import torch

    from cnnscope.optvis.ascent import AscentSettings
    from cnnscope.optvis.oip import map_objectives
    from cnnscope.optvis.oip_run import OipRun
    from cnnscope.optvis.quality import quality_report

    m = len(maps)
    run = OipRun(objectives=map_objectives(model, layer, maps), images=images,  # the stored OIPs as a run
                 values=torch.tensor([[float(r["value"]) for r in records]]),
                 reacted=torch.tensor([bool(r["reacted"]) for r in records]),
                 steps_used=torch.tensor([int(r["steps_used"]) for r in records]), snapshots={},
                 restart=torch.zeros(m, dtype=torch.long), start_seeds=[0] * m,
                 start_kind=[r["start"] for r in records], settings=AscentSettings())
    rows = quality_report(run, model, test_images, test_values)["targets"]
    return [{**{name: row.get(name) for name in TRUST_FIGURES}, "start_similarity": record.get("start_similarity")}
            for row, record in zip(rows, records, strict=True)]


def _find_map_oips(model: CNN, layer: str, maps: list[int], settings: OipSettings):
    from cnnscope.optvis.ascent import AscentSettings
    from cnnscope.optvis.oip import find_oips, map_objectives

    return find_oips(model, map_objectives(model, layer, maps), AscentSettings(steps=settings.steps, snapshot_steps=()),
                     restarts=settings.restarts, precursor=settings.precursor,
                     precursor_steps=settings.precursor_steps, seed=settings.seed)


def oip_picture(image) -> np.ndarray:
    """An H x W OIP image (tensor) -> the page's picture: contrast-enhanced, colour-mapped, upscaled."""
    from cnnscope.figures.render import colorize, enhance_contrast, upscale

    return upscale(colorize(enhance_contrast(image.detach().cpu().numpy()), COLORMAP, 0.0, 1.0), OIP_SCALE)


def starts_settings(settings: OipSettings, starts: int) -> OipSettings:
    """The settings of a gallery of `starts` starts per map: `settings` with that many restarts."""
    return replace(settings, restarts=starts)


def png_data_url(picture: np.ndarray) -> str:
    """An RGB uint8 picture as a PNG data URL (an <img> src)."""
    from PIL import Image

    buffer = BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def compute_map_starts(model: CNN, layer: str, maps: list[int], settings: OipSettings, starts: int) -> list[dict]:
    """Every start's OIP of some maps (a gallery), with how alike the starts are.

    Args:
        model, layer, maps: as for `compute_map_oips`.
        settings: steps, precursor search and seed; `restarts` is replaced by `starts`.
        starts: starts per map (2 or more, so there is a similarity).

    Returns:
        Per map, in the order of `maps`: {"kept": the start `compute_map_oips` keeps with these
        settings, "similarity": `gallery.start_similarity` (None with fewer than 2 reacting
        starts), "starts": [{"picture": PNG data URL, "value", "reacted"} per start]}.
    """
    from cnnscope.optvis.gallery import start_similarity

    run = _find_map_oips(model, layer, maps, starts_settings(settings, starts))
    similarity = start_similarity(run)
    out = []
    for i in range(len(maps)):
        pictures = [{"picture": png_data_url(oip_picture(run.starts.images[r, i, 0])),
                     "value": round(float(run.starts.final[r, i]), 5), "reacted": bool(run.starts.reacted[r, i])}
                    for r in range(starts)]
        value = float(similarity[i])
        out.append({"kept": int(run.restart[i]), "similarity": None if math.isnan(value) else round(value, 4),
                    "starts": pictures})
    return out


class OipCache:
    """OIP pictures (PNG) and records (JSON) of one model on disk; the callers check layers and maps.

    Files are named by the server from checked values only: `<folder>/<layer>/<map>-<settings key>`.
    """

    def __init__(self, folder: str | Path, settings: OipSettings, weights: str):
        self.folder = Path(folder)
        self.settings = settings
        self.weights = weights

    def paths(self, layer: str, index: int) -> tuple[Path, Path]:
        """The picture and record files of one map's OIP."""
        stem = self.folder / layer / f"{index:04d}-{self.settings.key()}"
        return stem.with_suffix(".png"), stem.with_suffix(".json")

    def image_path(self, layer: str, index: int) -> Path:
        """The file of the OIP itself (float32 .npy, standardised space), for its trust figures."""
        return self.paths(layer, index)[0].with_suffix(".npy")

    def image(self, layer: str, index: int) -> np.ndarray | None:
        """The stored OIP itself (H x W float32), or None if it is not stored."""
        try:
            return np.load(self.image_path(layer, index), allow_pickle=False)
        except (OSError, ValueError):
            return None

    def add_trust(self, layer: str, index: int, trust: dict) -> dict | None:
        """Write a stored OIP's trust figures into its record; the record as `read` gives it
        (None if the record is gone or unreadable meanwhile: nothing is written then)."""
        _, sidecar = self.paths(layer, index)
        stored = self.read(layer, index)
        if stored is None:
            return None
        write_json(sidecar, {**{k: v for k, v in stored.items() if k not in ("url", "cached")}, "trust": trust})
        return self.read(layer, index)

    def url(self, layer: str, index: int) -> str:
        """The picture's URL, versioned by model and settings (so the browser may cache it)."""
        return f"/api/oip/{layer}/{index}/image.png?v={self.weights[:8]}{self.settings.key()}"

    def read(self, layer: str, index: int) -> dict | None:
        """The stored record of a map's OIP with its URL, or None if it is not (fully) stored."""
        png, sidecar = self.paths(layer, index)
        if not (png.exists() and sidecar.exists()):
            return None
        try:
            record = json.loads(sidecar.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return {**record, "url": self.url(layer, index), "cached": True}

    def store(self, layer: str, maps: list[int], results: list[MapOip], seconds: float) -> dict[int, dict]:
        """Write freshly computed OIPs (one batch that took `seconds`); their records by map."""
        records = {}
        for index, result in zip(maps, results, strict=True):
            png, sidecar = self.paths(layer, index)
            save_image(png, result.picture)
            buffer = BytesIO()
            np.save(buffer, result.image, allow_pickle=False)
            write_bytes(self.image_path(layer, index), buffer.getvalue())
            record = {"layer": layer, "map": index, "value": result.value, "reacted": result.reacted,
                      "steps_used": result.steps_used, "start": result.start,
                      "start_similarity": result.start_similarity, "seconds": round(seconds / len(maps), 4),
                      "batch_seconds": round(seconds, 4), "batch_size": len(maps),
                      "settings": asdict(self.settings), "weights": self.weights,
                      "cnnscope": __version__}
            write_json(sidecar, record)
            records[index] = {**record, "url": self.url(layer, index), "cached": False}
        return records

    def starts_path(self, layer: str, index: int, starts: int) -> Path:
        """The record file of a map's gallery of `starts` starts (the key includes the starts)."""
        return self.folder / layer / f"{index:04d}-{starts_settings(self.settings, starts).key()}-starts{starts}.json"

    def read_starts(self, layer: str, index: int, starts: int) -> dict | None:
        """The stored gallery of a map, or None if it is not stored."""
        try:
            record = json.loads(self.starts_path(layer, index, starts).read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return {**record, "cached": True}

    def store_starts(self, layer: str, maps: list[int], results: list[dict], starts: int,
                     seconds: float) -> dict[int, dict]:
        """Write freshly computed galleries (one batch that took `seconds`); their records by map."""
        records = {}
        for index, result in zip(maps, results, strict=True):
            record = {"layer": layer, "map": index, "starts_count": starts, **result,
                      "seconds": round(seconds / len(maps), 4),
                      "settings": asdict(starts_settings(self.settings, starts)), "weights": self.weights,
                      "cnnscope": __version__}
            write_json(self.starts_path(layer, index, starts), record)
            records[index] = {**record, "cached": False}
        return records

    def picture(self, layer: str, index: int) -> bytes:
        """The PNG bytes of a stored OIP; RequestError 404 until it is computed."""
        png, _ = self.paths(layer, index)
        if not png.exists():
            raise RequestError(f"no OIP computed yet for {layer} map {index}; POST /api/oip/{layer} first", 404)
        return png.read_bytes()
