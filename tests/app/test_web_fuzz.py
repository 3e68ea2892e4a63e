"""The explorer's API fuzzed from its own OpenAPI schema with schemathesis (bounded examples):
no request may produce a 5xx answer, and answers conform to the schema (status codes, content
types, the JSON error body); plus the hostile requests found by hand: deeply nested bodies,
NUL bytes and percent-encoded traversal in static paths, oversized bodies."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis import checks  # noqa: E402

from cnnscope.app.explorer.decoding import MAX_BODY_BYTES  # noqa: E402
from cnnscope.app.explorer.oips import OipSettings  # noqa: E402
from cnnscope.app.explorer.web import create_app  # noqa: E402
from cnnscope.nn.checkpoint import load_checkpoint  # noqa: E402

FUZZ_OIP = OipSettings(steps=3, restarts=1, seed=0)  # valid OIP requests stay cheap


@pytest.fixture(scope="module")
def app(small_model_dir, mnist, tmp_path_factory):
    model, config = load_checkpoint(small_model_dir)
    return create_app(model, config, mnist, tmp_path_factory.mktemp("fuzz_cache"), oip_settings=FUZZ_OIP)


@pytest.fixture(scope="module")
def web_schema(app):
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = app
    return schema


@pytest.fixture()
def server_log(caplog):
    """Everything uvicorn, Starlette and FastAPI log while the test runs."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert tracebacks == [], [r.getMessage() for r in tracebacks]


fuzzed = schemathesis.pytest.from_fixture("web_schema")


@fuzzed.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])
def test_no_request_from_the_schema_is_a_server_error(case, server_log):
    case.call_and_validate(checks=[checks.not_a_server_error, checks.status_code_conformance,
                                   checks.content_type_conformance, checks.response_schema_conformance])


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"maps": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                                  b'{"a":' * 20_000 + b"1" + b"}" * 20_000])
@pytest.mark.parametrize("path", ["/api/draw", "/api/oip/Conv2D_3"])
def test_deeply_nested_bodies_are_refused_with_400(client, path, body, server_log):
    answer = client.post(path, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400 and "brackets" in answer.json()["error"]


@pytest.mark.parametrize("path", ["/static/%00", "/static/app.js%00", "/static/index.html%00.js",
                                  "/static/..%2f..%2fpyproject.toml", "/static/%2e%2e/%2e%2e/errors.py",
                                  "/static/%2e%2e%2f%2e%2e%2ffiles.py", "/static/..%5c..%5cfiles.py",
                                  "/static/%252e%252e%252ffiles.py", "/static/....//....//files.py",
                                  "/static//etc/passwd", "/static/%2fetc%2fpasswd"])
def test_nul_bytes_and_paths_outside_the_static_folder_are_not_found(client, path, server_log):
    answer = client.get(path)
    assert answer.status_code == 404, (path, answer.status_code, answer.text[:200])
    assert "import" not in answer.text and "root:" not in answer.text


@pytest.mark.parametrize("path", ["/api/top/%00/1", "/api/zoo/%00", "/api/oip/Conv2D_3/%00/image.png",
                                  "/api/test/%00", "/api/test/1%00/image.png"])
def test_nul_bytes_in_api_paths_are_client_errors(client, path, server_log):
    assert client.get(path).status_code in (400, 404, 422)


def test_a_body_over_the_limit_is_refused_with_413(client, server_log):
    body = b'{"maps": [' + b"1," * (MAX_BODY_BYTES // 2) + b"1]}"
    answer = client.post("/api/oip/Conv2D_3", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 413 and str(MAX_BODY_BYTES) in answer.json()["error"]
