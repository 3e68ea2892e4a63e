"""`Explorer`: what the explorer's page asks for, computed with the model and the test set.

Views of one image (a drawing or a test image), the test-set statistics behind the confusion
matrix and the top images, and the OIPs of maps; every layer, map and index is checked first.
Thread-safe for the server's threads: the test-set pass runs once, one OIP batch at a time,
and drawing never waits for either.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict
from functools import partial
from io import BytesIO
from pathlib import Path

import numpy as np
import torch

from cnnscope.analysis.evaluation import Evaluation
from cnnscope.app.explorer.decoding import (
    MAX_BODY_BYTES,
    MAX_CANVAS_SIDE,
    MAX_OIP_MAPS,
    RequestError,
    decode_canvas,
)
from cnnscope.app.explorer.encoding import b64, colormap_table, encode_layer, rounded
from cnnscope.app.explorer.oips import (
    OipCache,
    OipSettings,
    compute_map_oips,
    compute_map_starts,
    trust_figures,
    weights_hash,
)
from cnnscope.app.explorer.statistics import (
    TestStats,
    compute_test_stats,
    confusable_view,
    confusion_view,
    top_view,
)
from cnnscope.data.images import mnist_style
from cnnscope.data.mnist import Mnist, to_tensor
from cnnscope.errors import UserError
from cnnscope.nn.model import CNN
from cnnscope.runtime import device_of

VIEW_KINDS = ("conv", "pool", "dense")  # layers the page shows
ZOO_CHUNK = 8  # maps per zoo request: small, so a clicked map's OIP never waits long behind the zoo


class Explorer:
    """What the page asks for, computed with the library; thread-safe for the server's threads.

    Args:
        model: the network (put in eval mode).
        config: the checkpoint's config (its recipe and metrics are shown); may be empty.
        mnist: the data set the model was trained on (its test split is explored).
        cache_dir: folder for cached OIPs (a subfolder per model's weights).
        oip_settings: how OIPs are computed (default `OipSettings()`).
    """

    def __init__(self, model: CNN, config: dict, mnist: Mnist, cache_dir: str | Path,
                 oip_settings: OipSettings | None = None):
        self.model = model.eval()
        self.config = config or {}
        self.device = device_of(model)
        self.layers = [spec.name for spec in model.spec.layers if spec.kind in VIEW_KINDS]
        self.last_layer = model.layer_names[-1]
        self.test_x, self.test_y = mnist.images("test")
        self.oip_settings = oip_settings or OipSettings()
        self.weights_hash = weights_hash(model)
        self.oips = OipCache(Path(cache_dir) / "oip" / self.weights_hash[:16], self.oip_settings, self.weights_hash)
        self._stats: TestStats | None = None
        self._test_images: torch.Tensor | None = None  # the test images as a tensor, for OIPs' trust figures
        self._stats_lock = threading.Lock()
        self._oip_lock = threading.Lock()  # one OIP computation at a time; drawing never waits for it

    # ---- checks ----------------------------------------------------------------------
    def check_layer(self, layer: str) -> str:
        """`layer` if the page shows it, else RequestError 404 naming the valid layers."""
        if layer not in self.layers:
            raise RequestError(f"unknown layer {layer!r}; valid layers: {', '.join(self.layers)}", 404)
        return layer

    def map_count(self, layer: str) -> int:
        """Maps (or nodes) of a viewable layer."""
        return self.model.output_shape(self.check_layer(layer))[0]

    def check_map(self, layer: str, index: int) -> int:
        """`index` if it is a map of `layer`, else RequestError 404 with the range."""
        count = self.map_count(layer)
        if not 0 <= index < count:
            raise RequestError(f"map {index} is out of range for {layer}: 0..{count - 1}", 404)
        return index

    def check_index(self, index: int) -> int:
        """`index` if it is a test image, else RequestError 404 with the range."""
        if not 0 <= index < len(self.test_y):
            raise RequestError(f"test index {index} is out of range: 0..{len(self.test_y) - 1}", 404)
        return index

    # ---- views -----------------------------------------------------------------------
    def info(self) -> dict:
        """The model, its viewable layers, the colour map, the test-set size and the request limits."""
        metrics = self.config.get("metrics", {}) if isinstance(self.config.get("metrics"), dict) else {}
        return {
            "layers": [
                {"name": name, "kind": self.model.layer_spec(name).kind, "shape": list(self.model.output_shape(name))}
                for name in self.layers
            ],
            "classes": self.model.num_classes,
            "test_count": int(len(self.test_y)),
            "colormap": colormap_table(),
            "weights": self.weights_hash[:16],
            "recipe": self.config.get("recipe"),
            "metrics": {k: v for k, v in metrics.items() if isinstance(v, int | float | str)},
            "oip_settings": asdict(self.oip_settings),
            "limits": {"max_body_bytes": MAX_BODY_BYTES, "max_canvas_side": MAX_CANVAS_SIDE,
                       "max_oip_maps": MAX_OIP_MAPS},
        }

    def view(self, image: np.ndarray) -> dict:
        """A 28x28 uint8 image -> input bytes, probabilities and every viewable layer's output."""
        x = to_tensor(image[None]).to(self.device)
        wanted = self.layers if self.last_layer in self.layers else [*self.layers, self.last_layer]
        with torch.no_grad():
            outputs = self.model.activations(x, wanted)
            probabilities = self.model.output_probabilities(outputs[self.last_layer][0].double()).cpu().numpy()
        return {
            "input": b64(image),
            "probabilities": rounded(probabilities, 6),
            "predicted": int(probabilities.argmax()),
            "layers": {name: encode_layer(outputs[name][0].float().cpu().numpy()) for name in self.layers},
        }

    def draw(self, canvas: np.ndarray) -> dict:
        """A drawn canvas (gray, any size) -> the view of its MNIST-style 28x28 image."""
        try:
            image = mnist_style(canvas)
        except UserError as exc:
            raise RequestError(str(exc), 422) from None
        return {"source": "drawing", **self.view(image)}

    def draw_response(self, body: bytes) -> bytes:
        """The whole drawing update: request bytes -> response bytes (what the benchmark times)."""
        return json.dumps(self.draw(decode_canvas(body)), separators=(",", ":")).encode()

    def test_view(self, index: int) -> dict:
        """The view of test image `index`, with its label."""
        self.check_index(index)
        view = self.view(self.test_x[index])
        return {"source": "test", "index": index, "label": int(self.test_y[index]), **view}

    def test_png(self, index: int) -> bytes:
        """Test image `index` as a 28x28 PNG."""
        from PIL import Image

        self.check_index(index)
        buffer = BytesIO()
        Image.fromarray(self.test_x[index]).save(buffer, format="PNG")
        return buffer.getvalue()

    # ---- test-set statistics -----------------------------------------------------------
    def test_stats(self) -> TestStats:
        """The test-set pass, computed once on first need (or by the app's precompute thread)."""
        with self._stats_lock:
            if self._stats is None:
                self._stats = compute_test_stats(self.model, self.test_x, self.layers, self._let_oips_go_first)
            return self._stats

    def _let_oips_go_first(self) -> None:
        while self._oip_lock.locked():  # a clicked map's OIP goes first (the CPU is small)
            time.sleep(0.01)

    def evaluation(self) -> Evaluation:
        """The test-set evaluation (accuracy, confusion, mistakes) from the one batched pass."""
        return Evaluation(self.test_stats().probabilities, self.test_y.astype(np.int64), "test")

    def confusion(self) -> dict:
        """The confusion matrix with the test indices of each cell."""
        return confusion_view(self.evaluation())

    def confusable(self) -> dict:
        """Misclassified test images (most confident first), then the closest correct calls."""
        return confusable_view(self.evaluation())

    def top_images(self, layer: str, index: int) -> dict:
        """The test images that activate map `index` of `layer` most."""
        self.check_map(layer, index)
        return top_view(self.test_stats(), self.test_y, layer, index)

    # ---- OIPs ------------------------------------------------------------------------
    def oip(self, layer: str, maps: list[int], starts: int = 1) -> dict:
        """OIPs of some maps of a layer: cached ones read, missing ones computed in one batch.

        With `starts` > 1, every map's gallery instead: the OIPs of `starts` starts, the one kept
        and their similarity (`compute_map_starts`).
        """
        self.check_layer(layer)
        if not maps:
            raise RequestError("maps is empty; ask for at least one map")
        if len(maps) > MAX_OIP_MAPS:
            raise RequestError(f"at most {MAX_OIP_MAPS} maps per request, got {len(maps)}", 413)
        maps = list(dict.fromkeys(self.check_map(layer, m) for m in maps))
        read = partial(self.oips.read_starts, layer, starts=starts) if starts > 1 else partial(self.oips.read, layer)
        records = {m: read(m) for m in maps}
        missing = [m for m, r in records.items() if r is None]
        if missing:
            with self._oip_lock:  # another request may have computed them meanwhile
                records.update({m: read(m) for m in missing})
                missing = [m for m in missing if records[m] is None]
                if missing:
                    records.update(self._compute_oips(layer, missing, starts))
        if starts == 1 and self._stats is not None:  # after the test-set pass the trust figures are quick
            records = self._with_trust(layer, records, self._stats)
        answer = {"layer": layer, "oips": [records[m] for m in maps]}
        return answer if starts == 1 else {**answer, "starts": starts}

    def oip_trust(self, layer: str, index: int) -> dict:
        """A computed OIP's record with its trust figures (`oips.trust_figures`; they need the
        test-set pass, so this waits for it); RequestError 404 until the OIP is computed."""
        self.check_map(layer, index)
        record = self.oips.read(layer, index)
        if record is None:
            raise RequestError(f"no OIP computed yet for {layer} map {index}; POST /api/oip/{layer} first", 404)
        return self._with_trust(layer, {index: record}, self.test_stats())[index]

    def _compute_oips(self, layer: str, maps: list[int], starts: int) -> dict[int, dict]:
        started = time.perf_counter()
        if starts > 1:
            results = compute_map_starts(self.model, layer, maps, self.oip_settings, starts)
            return self.oips.store_starts(layer, maps, results, starts, time.perf_counter() - started)
        results = compute_map_oips(self.model, layer, maps, self.oip_settings)
        return self.oips.store(layer, maps, results, time.perf_counter() - started)

    def _with_trust(self, layer: str, records: dict[int, dict], stats: TestStats) -> dict[int, dict]:
        """`records` with the trust figures of those that lack them added (and stored)."""
        stored = {m: self.oips.image(layer, m) for m, r in records.items() if "trust" not in r}
        lacking = [m for m, image in stored.items() if image is not None]
        if not lacking:
            return records
        if self._test_images is None:
            self._test_images = to_tensor(self.test_x)
        with self._oip_lock:
            images = torch.stack([torch.from_numpy(stored[m])[None] for m in lacking])
            values = torch.from_numpy(np.ascontiguousarray(stats.map_means[layer][:, lacking].T))
            figures = trust_figures(self.model, layer, lacking, [records[m] for m in lacking], images,
                                    self._test_images, values)
            for m, trust in zip(lacking, figures, strict=True):
                updated = self.oips.add_trust(layer, m, trust)
                records[m] = {**(updated or records[m]), "trust": trust, "cached": records[m]["cached"]}
        return records

    def oip_png(self, layer: str, index: int) -> bytes:
        """The PNG of a computed OIP; RequestError 404 until it is computed."""
        return self.oips.picture(layer, self.check_map(layer, index))

    def zoo(self, layer: str) -> dict:
        """Which OIPs of a layer are cached, with their URLs."""
        count = self.map_count(layer)
        tiles = []
        for index in range(count):
            record = self.oips.read(layer, index)
            tiles.append({"map": index, "url": record["url"] if record else None,
                          "reacted": record["reacted"] if record else None,
                          "trust": record.get("trust") if record else None})
        return {"layer": layer, "count": count, "maps": tiles, "chunk": ZOO_CHUNK}
