"""The explorer's API (FastAPI TestClient) and the `cnnscope explore` command."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from cnnscope.app.cli import main  # noqa: E402
from cnnscope.app.explorer.decoding import MAX_BODY_BYTES, decode_canvas  # noqa: E402
from cnnscope.app.explorer.hosts import LOOPBACK_HOSTS, host_name, is_loopback  # noqa: E402
from cnnscope.app.explorer.oips import OipSettings, weights_hash  # noqa: E402
from cnnscope.app.explorer.server import ServerThread, bind_socket  # noqa: E402
from cnnscope.app.explorer.web import create_app  # noqa: E402
from cnnscope.data.images import mnist_style  # noqa: E402
from cnnscope.data.mnist import to_tensor  # noqa: E402
from cnnscope.nn.checkpoint import load_checkpoint  # noqa: E402
from cnnscope.nn.model import CNN  # noqa: E402

TEST_OIP = OipSettings(steps=40, restarts=2, seed=0)  # small workload, same code path


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread: one-image work is fastest so on a busy machine (as `explore` does)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model_and_app(small_model_dir, mnist, tmp_path_factory, one_thread):
    model, config = load_checkpoint(small_model_dir)
    cache = tmp_path_factory.mktemp("explore_cache")
    app = create_app(model, config, mnist, cache, oip_settings=TEST_OIP)
    return model, app, cache


@pytest.fixture(scope="module")
def client(model_and_app):
    with TestClient(model_and_app[1]) as test_client:
        yield test_client


def canvas_of(image28: np.ndarray, size: int = 280) -> np.ndarray:
    """A 28x28 digit drawn large on a black canvas (as the page sends it)."""
    return np.asarray(Image.fromarray(image28).resize((size, size), Image.Resampling.BILINEAR))


def draw_body(canvas: np.ndarray) -> dict:
    height, width = canvas.shape
    return {"width": width, "height": height, "pixels": base64.b64encode(canvas.tobytes()).decode()}


def decode_layer(encoded: dict) -> np.ndarray:
    if "values" in encoded:
        return np.array(encoded["values"])
    c, h, w = encoded["shape"]
    data = np.frombuffer(base64.b64decode(encoded["data"]), dtype=np.uint8).reshape(c, h, w) / 255.0
    low, high = np.array(encoded["min"]), np.array(encoded["max"])
    return low[:, None, None] + data * (high - low)[:, None, None]


def test_page_and_static_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<canvas id="draw"' in page.text and "/static/app.js" in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: works offline


def test_info_lists_the_viewable_layers_and_a_colour_map(client, model_and_app):
    model = model_and_app[0]
    info = client.get("/api/info").json()
    names = [layer["name"] for layer in info["layers"]]
    assert names == ["Conv2D_1", "Max_Pool_1", "Conv2D_2", "Max_Pool_2", "Conv2D_3", "Dense_1", "Dense_2"]
    assert [tuple(layer["shape"]) for layer in info["layers"]] == [model.output_shape(n) for n in names]
    assert len(base64.b64decode(info["colormap"]["lut"])) == 256 * 3
    assert info["test_count"] == 10000 and info["classes"] == 10


def test_draw_goes_through_mnist_style_and_returns_every_layer(client, model_and_app, mnist):
    model = model_and_app[0]
    canvas = canvas_of(mnist.test_x[3])
    response = client.post("/api/draw", json=draw_body(canvas))
    assert response.status_code == 200
    assert response.headers["server-timing"].startswith("compute;dur=")
    view = response.json()
    expected_input = mnist_style(canvas)  # the one shared conversion
    got_input = np.frombuffer(base64.b64decode(view["input"]), dtype=np.uint8).reshape(28, 28)
    assert np.array_equal(got_input, expected_input)

    x = to_tensor(expected_input[None])
    with torch.no_grad():
        probabilities = model.probabilities(x)[0].numpy()
        outputs = model.activations(x, list(view["layers"]))
    assert abs(sum(view["probabilities"]) - 1.0) < 1e-5
    assert np.allclose(view["probabilities"], probabilities, atol=1e-5)
    assert view["predicted"] == int(probabilities.argmax())
    for name, encoded in view["layers"].items():
        truth = outputs[name][0].numpy()
        decoded = decode_layer(encoded)
        assert decoded.shape == truth.shape
        if truth.ndim == 3:  # per-map bytes: error at most half a step of the map's range
            step = (truth.max(axis=(1, 2)) - truth.min(axis=(1, 2))) / 255
            assert np.all(np.abs(decoded - truth) <= step[:, None, None] / 2 + 1e-4)
            assert np.allclose(encoded["mean"], truth.mean(axis=(1, 2)), atol=1e-4)
        else:
            assert np.allclose(decoded, truth, atol=1e-4)


def test_a_drawn_stroke_is_read_the_mnist_way(client):
    picture = Image.new("L", (280, 280))
    ImageDraw.Draw(picture).line([(140, 30), (150, 250)], fill=255, width=18)  # a "1"
    view = client.post("/api/draw", json=draw_body(np.asarray(picture))).json()
    image = np.frombuffer(base64.b64decode(view["input"]), dtype=np.uint8).reshape(28, 28)
    rows = np.flatnonzero(image.max(axis=1) > 50)
    assert rows[-1] - rows[0] + 1 in (19, 20, 21)  # fitted into the 20-pixel box
    assert view["predicted"] == 1


def test_test_image_view_matches_the_library_prediction(client, model_and_app, mnist):
    model = model_and_app[0]
    for index in (0, 7, 4242):
        view = client.get(f"/api/test/{index}").json()
        with torch.no_grad():
            expected = int(model.probabilities(to_tensor(mnist.test_x[index:index + 1])).argmax())
        assert view["index"] == index and view["label"] == int(mnist.test_y[index])
        assert view["predicted"] == expected
        pixels = np.frombuffer(base64.b64decode(view["input"]), dtype=np.uint8).reshape(28, 28)
        assert np.array_equal(pixels, mnist.test_x[index])
    png = client.get("/api/test/7/image.png")
    assert png.headers["content-type"] == "image/png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png.content))), mnist.test_x[7])


def test_confusion_matrix_and_confusable_examples(client, model_and_app, mnist):
    model = model_and_app[0]
    answer = client.get("/api/confusion").json()
    matrix = np.array(answer["matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 10000
    assert np.array_equal(matrix.sum(axis=1), np.bincount(mnist.test_y, minlength=10))
    assert answer["accuracy"] == pytest.approx(np.trace(matrix) / 10000)
    assert answer["accuracy"] > 0.9
    for key, indices in answer["cells"].items():
        true, predicted = map(int, key.split(","))
        assert len(indices) == min(matrix[true, predicted], answer["cell_limit"])
        assert all(int(mnist.test_y[i]) == true for i in indices)
    wrong_cell = next(k for k in answer["cells"] if k.split(",")[0] != k.split(",")[1])
    index = answer["cells"][wrong_cell][0]
    with torch.no_grad():
        predicted = int(model.probabilities(to_tensor(mnist.test_x[index:index + 1])).argmax())
    assert predicted == int(wrong_cell.split(",")[1])

    confusable = client.get("/api/confusable").json()
    examples = confusable["examples"]
    assert confusable["misclassified"] == 10000 - np.trace(matrix)
    assert examples and all(e["wrong"] for e in examples[:confusable["misclassified"]][:20])
    assert all(e["label"] != e["predicted"] for e in examples if e["wrong"])


def test_top_images_are_the_test_images_that_activate_a_map_most(client, model_and_app, mnist):
    model = model_and_app[0]
    answer = client.get("/api/top/Conv2D_2/5").json()
    images = answer["images"]
    assert len(images) == 9
    values = [item["value"] for item in images]
    assert values == sorted(values, reverse=True)
    chosen = [item["index"] for item in images]
    rng = np.random.default_rng(0)
    others = rng.choice(10000, 300, replace=False)
    with torch.no_grad():
        acts = model.activations(to_tensor(mnist.test_x[np.concatenate([chosen, others])]), ["Conv2D_2"])["Conv2D_2"]
    means = acts[:, 5].mean(dim=(1, 2)).numpy()
    assert np.allclose(means[:9], values, atol=1e-4)
    assert means[9:].max() <= values[-1] + 1e-5  # no random test image beats the ninth
    dense = client.get("/api/top/Dense_1/3").json()["images"]
    assert len(dense) == 9


def test_oip_is_computed_once_then_served_from_the_cache(client, model_and_app):
    model, _, cache = model_and_app
    first = client.post("/api/oip/Conv2D_1", json={"maps": [4]}).json()["oips"][0]
    assert first["cached"] is False and first["map"] == 4 and first["layer"] == "Conv2D_1"
    assert first["reacted"] is True and first["value"] > 0
    assert first["settings"] == {"steps": 40, "restarts": 2, "precursor": 8, "precursor_steps": 20, "seed": 0}
    png_files = list((cache / "oip").rglob("0004-*.png"))
    assert len(png_files) == 1 and len(list((cache / "oip").rglob("0004-*.json"))) == 1
    assert weights_hash(model)[:16] in str(png_files[0])  # cached per model
    second = client.post("/api/oip/Conv2D_1", json={"maps": [4]}).json()["oips"][0]
    assert second["cached"] is True and second["url"] == first["url"] and second["value"] == first["value"]
    picture = client.get(first["url"])
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    assert picture.content == png_files[0].read_bytes()
    image = np.asarray(Image.open(io.BytesIO(picture.content)))
    assert image.shape == (112, 112, 3) and image.std() > 10  # a pattern, not a flat picture


def test_oip_of_a_map_is_the_same_alone_or_in_a_zoo_chunk(model_and_app, mnist, tmp_path):
    model = model_and_app[0]
    alone = TestClient(create_app(model, {}, mnist, tmp_path / "a", oip_settings=TEST_OIP))
    chunk = TestClient(create_app(model, {}, mnist, tmp_path / "b", oip_settings=TEST_OIP))
    single = alone.post("/api/oip/Max_Pool_1", json={"maps": [2]}).json()["oips"][0]
    batch = chunk.post("/api/oip/Max_Pool_1", json={"maps": [0, 1, 2, 3]}).json()["oips"]
    assert [r["map"] for r in batch] == [0, 1, 2, 3]
    assert batch[2]["value"] == pytest.approx(single["value"], rel=1e-3)
    a = np.asarray(Image.open(io.BytesIO(alone.get(single["url"]).content)), dtype=float)
    b = np.asarray(Image.open(io.BytesIO(chunk.get(batch[2]["url"]).content)), dtype=float)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99

    zoo = chunk.get("/api/zoo/Max_Pool_1").json()
    assert zoo["count"] == 32 and len(zoo["maps"]) == 32
    assert [t["map"] for t in zoo["maps"] if t["url"]] == [0, 1, 2, 3]
    assert zoo["maps"][2]["trust"] is None  # no test-set pass yet
    trust = chunk.get("/api/oip/Max_Pool_1/2/trust").json()["trust"]
    assert chunk.get("/api/zoo/Max_Pool_1").json()["maps"][2]["trust"] == trust


def test_an_oip_gets_its_trust_figures_once_the_test_set_pass_is_done(model_and_app, mnist, tmp_path):
    model = model_and_app[0]
    explorer_app = create_app(model, {}, mnist, tmp_path, oip_settings=TEST_OIP)  # no test-set pass yet
    with TestClient(explorer_app) as client:
        record = client.post("/api/oip/Conv2D_2", json={"maps": [7]}).json()["oips"][0]
        assert record["reacted"] is True and "trust" not in record  # the OIP does not wait for the pass
        assert 0 < record["start_similarity"] <= 1  # two restarts in TEST_OIP
        trust = client.get("/api/oip/Conv2D_2/7/trust").json()["trust"]  # runs the pass, then the figures
        assert set(trust) == {"ratio", "majority", "natural_path_mean", "outside", "clipped_ratio", "start_similarity"}
        with torch.no_grad():  # the map's highest mean activation over the test images, computed here
            maps = model.activations(to_tensor(mnist.test_x), ["Conv2D_2"])["Conv2D_2"]
        best = float(maps[:, 7].mean(dim=(1, 2)).max())
        assert trust["ratio"] == pytest.approx(record["value"] / best, rel=1e-3)
        assert isinstance(trust["majority"], bool) and trust["start_similarity"] == record["start_similarity"]
        assert -1 <= trust["natural_path_mean"] <= 1 and 0 <= trust["outside"] <= 1
        again = client.post("/api/oip/Conv2D_2", json={"maps": [7]}).json()["oips"][0]
        assert again["cached"] is True and again["trust"] == trust  # stored with the OIP
        fresh = client.post("/api/oip/Conv2D_2", json={"maps": [8]}).json()["oips"][0]
        assert fresh["cached"] is False and set(fresh["trust"]) == set(trust)  # after the pass: at once
        assert client.get("/api/oip/Conv2D_2/9/trust").status_code == 404  # not computed yet


def test_dense_node_oip(client):
    record = client.post("/api/oip/Dense_2", json={"maps": [3]}).json()["oips"][0]
    assert record["map"] == 3 and record["reacted"] is True and record["value"] > 0


def test_another_model_gets_its_own_cache(model_and_app, mnist, tmp_path):
    model = model_and_app[0]
    other = CNN(model.spec)
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        other.body.Conv2D_1.bias += 0.01
    assert weights_hash(other) != weights_hash(model)
    client_a = TestClient(create_app(model, {}, mnist, tmp_path, oip_settings=TEST_OIP))
    client_b = TestClient(create_app(other.eval(), {}, mnist, tmp_path, oip_settings=TEST_OIP))
    client_a.post("/api/oip/Conv2D_1", json={"maps": [0]})
    assert client_b.get("/api/zoo/Conv2D_1").json()["maps"][0]["url"] is None
    assert client_b.post("/api/oip/Conv2D_1", json={"maps": [0]}).json()["oips"][0]["cached"] is False


def data_url_pixels(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def test_oip_from_several_starts_keeps_every_start_and_says_how_alike_they_are(client, model_and_app):
    cache = model_and_app[2]
    today = client.post("/api/oip/Conv2D_2", json={"maps": [5]}).json()["oips"][0]
    today_pixels = np.asarray(Image.open(io.BytesIO(client.get(today["url"]).content)))
    answer = client.post("/api/oip/Conv2D_2", json={"maps": [5], "starts": 2}).json()
    assert answer["starts"] == 2 and answer["layer"] == "Conv2D_2"
    two = answer["oips"][0]
    assert two["map"] == 5 and two["cached"] is False and len(two["starts"]) == 2
    # TEST_OIP keeps the best of 2 restarts: the kept start is today's OIP, pixel for pixel
    assert np.array_equal(data_url_pixels(two["starts"][two["kept"]]["picture"]), today_pixels)
    assert two["starts"][two["kept"]]["value"] == pytest.approx(today["value"], abs=1e-5)
    assert two["similarity"] is None or -1.0 <= two["similarity"] <= 1.0

    three = client.post("/api/oip/Conv2D_2", json={"maps": [5], "starts": 3}).json()["oips"][0]
    assert len(three["starts"]) == 3 and three["settings"]["restarts"] == 3
    assert three["similarity"] is None or -1.0 <= three["similarity"] <= 1.0
    assert sum(s["reacted"] for s in three["starts"]) >= 2 and three["similarity"] is not None
    for start in three["starts"]:
        pixels = data_url_pixels(start["picture"])
        assert pixels.shape == (112, 112, 3) and pixels.std() > 10
    # starts are seeded by (seed, map, restart): a third start adds one, the first two are the same
    assert [s["value"] for s in three["starts"][:2]] == pytest.approx([s["value"] for s in two["starts"]], abs=1e-4)
    assert three["starts"][three["kept"]]["value"] == max(s["value"] for s in three["starts"] if s["reacted"])
    assert len(list((cache / "oip").rglob("0005-*-starts3.json"))) == 1  # cached per number of starts
    again = client.post("/api/oip/Conv2D_2", json={"maps": [5], "starts": 3}).json()["oips"][0]
    assert again["cached"] is True and again["starts"] == three["starts"]


BAD_REQUESTS = [
    # (method, path, body or None, headers, expected status, words in the message)
    ("post", "/api/draw", b"not json", {"content-type": "application/json"}, 400, "not valid JSON"),
    ("post", "/api/draw", b"[1, 2]", {"content-type": "application/json"}, 400, "JSON object"),
    ("post", "/api/draw", {"width": "280", "height": 280, "pixels": ""}, None, 400, "width must be an integer"),
    ("post", "/api/draw", {"width": 0, "height": 280, "pixels": ""}, None, 400, "between 1 and 1024"),
    ("post", "/api/draw", {"width": 5000, "height": 5000, "pixels": ""}, None, 413, "between 1 and 1024"),
    ("post", "/api/draw", {"width": 28, "height": 28, "pixels": 5}, None, 400, "base64 string"),
    ("post", "/api/draw", {"width": 28, "height": 28, "pixels": "%%%"}, None, 400, "not valid base64"),
    ("post", "/api/draw", {"width": 28, "height": 28, "pixels": base64.b64encode(bytes(10)).decode()}, None, 400, "expected width*height = 784"),
    ("post", "/api/draw", {"width": 28, "height": 28, "pixels": base64.b64encode(bytes(784)).decode()}, None, 422, "empty"),
    ("post", "/api/draw", b"{}", {"content-type": "text/plain"}, 415, "application/json"),
    ("post", "/api/draw", b"x" * (MAX_BODY_BYTES + 1), {"content-type": "application/json"}, 413, "limit"),
    ("get", "/api/test/10000", None, None, 404, "out of range: 0..9999"),
    ("get", "/api/test/-1", None, None, 404, "out of range"),
    ("get", "/api/test/seven", None, None, 422, "integer"),
    ("get", "/api/top/Flatten/0", None, None, 404, "valid layers: Conv2D_1"),
    ("get", "/api/top/Conv2D_1/32", None, None, 404, "0..31"),
    ("get", "/api/zoo/..%2F..%2Fetc", None, None, 404, ""),
    ("get", "/api/zoo/etc", None, None, 404, "unknown layer"),
    ("post", "/api/oip/Conv2D_1", {"maps": list(range(40))}, None, 413, "at most 32"),
    ("post", "/api/oip/Conv2D_1", {"maps": []}, None, 400, "empty"),
    ("post", "/api/oip/Conv2D_1", {"maps": ["0"]}, None, 400, "integers"),
    ("post", "/api/oip/Conv2D_1", {"maps": [True]}, None, 400, "integers"),
    ("post", "/api/oip/Conv2D_1", {"path": "/etc/passwd"}, None, 400, "integers"),
    ("post", "/api/oip/Dense_1", {"maps": [100]}, None, 404, "0..99"),
    ("post", "/api/oip/Conv2D_1", {"maps": [0], "starts": 0}, None, 400, "starts must be an integer in 1..8, got 0"),
    ("post", "/api/oip/Conv2D_1", {"maps": [0], "starts": 9}, None, 400, "in 1..8, got 9"),
    ("post", "/api/oip/Conv2D_1", {"maps": [0], "starts": "4"}, None, 400, 'got "4"'),
    ("post", "/api/oip/Conv2D_1", {"maps": [0], "starts": True}, None, 400, "got true"),
    ("post", "/api/oip/Conv2D_1", {"maps": [0], "starts": 2.5}, None, 400, "got 2.5"),
    ("get", "/api/oip/Conv2D_1/31/image.png", None, None, 404, "no OIP computed yet"),
    ("get", "/api/oip/Conv2D_1/31/trust", None, None, 404, "no OIP computed yet"),
    ("get", "/api/oip/Conv2D_1/32/trust", None, None, 404, "0..31"),
    ("get", "/api/oip/..%2F..%2F/0/image.png", None, None, 404, ""),
    ("get", "/static/../web.py", None, None, 404, ""),
    ("get", "/api/nothing", None, None, 404, ""),
]


@pytest.mark.parametrize("method, path, body, headers, status, words", BAD_REQUESTS,
                         ids=[f"{r[0]} {r[1]} {r[4]}" for r in BAD_REQUESTS])
def test_malformed_or_oversized_requests_get_4xx_with_a_message(client, method, path, body, headers, status, words):
    if method == "get":
        response = client.get(path)
    elif isinstance(body, bytes):
        response = client.post(path, content=body, headers=headers)
    else:
        response = client.post(path, json=body)
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert isinstance(message, str) and message and "\n" not in message
    assert words in message


def test_a_body_streamed_without_length_is_cut_at_the_limit(client):
    def chunks():
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    response = client.post("/api/draw", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "exceeds the limit" in response.json()["error"]


def test_only_loopback_host_names_are_served_when_asked(model_and_app, mnist, tmp_path):
    app = create_app(model_and_app[0], {}, mnist, tmp_path, allowed_hosts=LOOPBACK_HOSTS)
    test_client = TestClient(app, base_url="http://127.0.0.1:8000")
    for host in ("127.0.0.1:8000", "localhost", "[::1]:8000"):
        assert test_client.get("/api/info", headers={"host": host}).status_code == 200
    rebound = test_client.get("/api/info", headers={"host": "evil.example:8000"})
    assert rebound.status_code == 400 and "not allowed" in rebound.json()["error"]
    assert host_name("127.0.0.1:8000") == "127.0.0.1" and host_name("[::1]:80") == "::1"
    assert host_name("LOCALHOST") == "localhost" and host_name("") == ""


def test_decode_canvas_accepts_the_page_format():
    canvas = np.arange(12, dtype=np.uint8).reshape(3, 4)
    body = json.dumps(draw_body(canvas)).encode()
    assert np.array_equal(decode_canvas(body), canvas)


# ---- a real server: slow OIPs do not hold up drawing ------------------------------------------
@pytest.fixture()
def live_server(model_and_app, mnist, tmp_path):
    pytest.importorskip("uvicorn")
    app = create_app(model_and_app[0], {}, mnist, tmp_path, oip_settings=OipSettings(steps=300, restarts=2))
    with ServerThread(app) as url:
        yield url


@pytest.mark.slow
def test_drawing_is_answered_while_an_oip_is_being_computed(live_server, mnist):
    import httpx

    oip_answer = {}

    def slow_oip():
        maps = list(range(32))  # 64 images x 300 steps through three conv layers: seconds
        oip_answer["response"] = httpx.post(f"{live_server}/api/oip/Conv2D_3", json={"maps": maps}, timeout=300)

    worker = threading.Thread(target=slow_oip)
    worker.start()
    time.sleep(0.3)  # let the OIP request reach the server
    body = draw_body(canvas_of(mnist.test_x[0]))
    answered_during_oip = 0
    with httpx.Client(base_url=live_server, timeout=60) as http:
        for _ in range(5):
            response = http.post("/api/draw", json=body)
            assert response.status_code == 200 and response.json()["predicted"] in range(10)
            answered_during_oip += worker.is_alive()
    assert answered_during_oip == 5  # every drawing update came back before the OIP finished
    worker.join(300)
    assert oip_answer["response"].status_code == 200
    assert len(oip_answer["response"].json()["oips"]) == 32


# ---- the command ---------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, words", [
    (["--host", "0.0.0.0"], "--allow-remote"),
    (["--host", "192.168.1.5"], "--allow-remote"),
    (["--port", "70000"], "port must be 0..65535"),
    (["--threads", "0"], "--threads: threads must be a whole number >= 1, got 0"),
])
def test_explore_refuses_bad_options_in_one_line(argv, words, capsys, small_model_dir):
    assert main(["explore", "--model", str(small_model_dir), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "Traceback" not in err


def test_explore_without_a_model_says_how_to_get_one(capsys, tmp_path):
    assert main(["explore", "--model", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no checkpoint" in err


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1") and not is_loopback("example.org")


@pytest.mark.slow
def test_explore_command_serves_the_page_and_prints_the_url(small_model_dir, cnnscope_home, mnist):
    import httpx

    env = {**os.environ, "CNNSCOPE_HOME": str(cnnscope_home)}
    process = subprocess.Popen([sys.executable, "-m", "cnnscope", "explore", "--model", str(small_model_dir), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        assert line.startswith("cnnscope explorer: http://127.0.0.1:"), line + process.stderr.read()
        url = line.split()[2]
        assert httpx.get(url, timeout=30).status_code == 200
        view = httpx.get(url + "api/test/0", timeout=30).json()
        assert view["label"] == int(mnist.test_y[0])
    finally:
        process.terminate()
        process.wait(30)


def test_explore_on_a_busy_port_is_a_one_line_error(capsys, small_model_dir):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["explore", "--model", str(small_model_dir), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err
    sock = bind_socket("127.0.0.1", 0)
    assert sock.proto == socket.IPPROTO_TCP  # asyncio then sets TCP_NODELAY (no 40 ms delayed-ACK stalls)
    sock.close()


def test_trust_figures_of_a_record_that_vanished_are_not_written(model_and_app, mnist, tmp_path):
    from cnnscope.app.explorer.oips import OipCache

    model = model_and_app[0]
    with TestClient(create_app(model, {}, mnist, tmp_path, oip_settings=TEST_OIP)) as client:
        client.post("/api/oip/Conv2D_1", json={"maps": [1]})
    cache = OipCache(tmp_path / "oip" / weights_hash(model)[:16], TEST_OIP, weights_hash(model))
    _, sidecar = cache.paths("Conv2D_1", 1)
    sidecar.write_text("{broken")  # a record cut short by a crash
    assert cache.add_trust("Conv2D_1", 1, {"ratio": 1.0}) is None
    assert sidecar.read_text() == "{broken"  # nothing written over it
