"""demo-echo over real HTTP: every endpoint, its limits, and its OpenAPI document."""

from __future__ import annotations

import json
import logging
import time

import httpx
import pytest
from openapi_spec_validator import validate

PROBLEM_JSON = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, detail_contains: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == status
    assert detail_contains in body["detail"]


def test_get_echoes_method_path_query_headers_and_client(echo_url: str) -> None:
    response = httpx.get(f"{echo_url}/get?a=1&a=2&b=x", headers={"X-Trace": "abc"})

    assert response.status_code == 200
    echoed = response.json()
    assert echoed["method"] == "GET"
    assert echoed["path"] == "/get"
    assert echoed["url"] == f"{echo_url}/get?a=1&a=2&b=x"
    assert echoed["args"] == {"a": ["1", "2"], "b": "x"}
    assert echoed["headers"]["X-Trace"] == "abc"
    assert echoed["origin"] == "127.0.0.1"
    assert echoed["data"] == ""
    assert echoed["json"] is None


def test_post_echoes_a_json_body_parsed_and_raw(echo_url: str) -> None:
    echoed = httpx.post(f"{echo_url}/post", json={"card": "4111", "n": [1, 2]}).json()

    assert echoed["method"] == "POST"
    assert echoed["json"] == {"card": "4111", "n": [1, 2]}
    assert json.loads(echoed["data"]) == {"card": "4111", "n": [1, 2]}


def test_post_echoes_form_fields_and_uploaded_files(echo_url: str) -> None:
    echoed = httpx.post(
        f"{echo_url}/post", data={"name": "Ada", "tag": ["a", "b"]}, files={"upload": ("a.txt", b"hello")}
    ).json()

    assert echoed["form"] == {"name": "Ada", "tag": ["a", "b"]}
    assert echoed["files"] == {"upload": "hello"}
    assert echoed["data"] == ""


def test_a_body_that_is_not_utf8_is_echoed_as_a_base64_data_url(echo_url: str) -> None:
    echoed = httpx.post(
        f"{echo_url}/anything", content=b"\xff\x00", headers={"Content-Type": "application/octet-stream"}
    ).json()

    assert echoed["data"] == "data:application/octet-stream;base64,/wA="


def test_invalid_json_is_echoed_raw_with_json_null(echo_url: str) -> None:
    echoed = httpx.post(f"{echo_url}/post", content=b"{oops", headers={"Content-Type": "application/json"}).json()

    assert echoed["json"] is None
    assert echoed["data"] == "{oops"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_anything_accepts_every_method_under_any_path(echo_url: str, method: str) -> None:
    response = httpx.request(method, f"{echo_url}/anything/deep/path?q=1")

    assert response.status_code == 200
    assert response.json()["method"] == method
    assert response.json()["path"] == "/anything/deep/path"


@pytest.mark.parametrize(("path", "method"), [("put", "PUT"), ("patch", "PATCH"), ("delete", "DELETE")])
def test_method_endpoints_echo_their_method(echo_url: str, path: str, method: str) -> None:
    assert httpx.request(method, f"{echo_url}/{path}").json()["method"] == method


def test_a_wrong_method_is_a_405_problem_with_allow(echo_url: str) -> None:
    response = httpx.post(f"{echo_url}/get")

    assert_problem(response, 405, "POST is not allowed")
    assert "GET" in response.headers["allow"]


def test_an_unknown_path_is_a_404_problem(echo_url: str) -> None:
    assert_problem(httpx.get(f"{echo_url}/nope"), 404, "/nope is not an endpoint")


@pytest.mark.parametrize("code", [200, 201, 302, 418, 429, 500, 503, 599])
def test_status_answers_the_requested_status(echo_url: str, code: int) -> None:
    response = httpx.post(f"{echo_url}/status/{code}")

    assert response.status_code == code
    assert response.json()["status"] == code


@pytest.mark.parametrize("code", [204, 304])
def test_status_without_a_body(echo_url: str, code: int) -> None:
    response = httpx.get(f"{echo_url}/status/{code}")

    assert response.status_code == code
    assert response.content == b""


@pytest.mark.parametrize(
    ("code", "detail"),
    [
        ("abc", "must be an integer"),
        ("99", "between 100 and 599"),
        ("600", "between 100 and 599"),
        ("-1", "between 100 and 599"),
        ("100", "informational"),
    ],
)
def test_status_refuses_a_code_it_cannot_answer_with(echo_url: str, code: str, detail: str) -> None:
    assert_problem(httpx.get(f"{echo_url}/status/{code}"), 400, detail)


def test_delay_waits_then_echoes(echo_url: str) -> None:
    started = time.monotonic()
    response = httpx.get(f"{echo_url}/delay/0.3?x=1")

    assert time.monotonic() - started >= 0.3
    assert response.json()["delay"] == 0.3
    assert response.json()["args"] == {"x": "1"}


@pytest.mark.parametrize(("seconds", "detail"), [("31", "between 0 and 30"), ("-1", "between 0"), ("nan", "between")])
def test_delay_refuses_out_of_range_or_non_numbers(echo_url: str, seconds: str, detail: str) -> None:
    assert_problem(httpx.get(f"{echo_url}/delay/{seconds}"), 400, detail)


def test_delay_refuses_a_word(echo_url: str) -> None:
    assert_problem(httpx.get(f"{echo_url}/delay/soon"), 400, "must be a number of seconds")


def test_stream_sends_n_json_lines_chunked(echo_url: str) -> None:
    with httpx.stream("GET", f"{echo_url}/stream/5?interval=0.01") as response:
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.iter_lines() if line]

    assert [line["id"] for line in lines] == [0, 1, 2, 3, 4]
    assert lines[0]["args"] == {"interval": "0.01"}


def test_stream_of_zero_lines_is_empty(echo_url: str) -> None:
    assert httpx.get(f"{echo_url}/stream/0").content == b""


@pytest.mark.parametrize("path", ["/stream/10001", "/stream/x", "/stream/2?interval=11"])
def test_stream_refuses_bad_input(echo_url: str, path: str) -> None:
    assert httpx.get(f"{echo_url}{path}").status_code == 400


def test_bytes_returns_n_random_bytes(echo_url: str) -> None:
    first = httpx.get(f"{echo_url}/bytes/1024")
    second = httpx.get(f"{echo_url}/bytes/1024")

    assert first.headers["content-type"] == "application/octet-stream"
    assert len(first.content) == len(second.content) == 1024
    assert first.content != second.content


def test_bytes_with_a_seed_are_reproducible(echo_url: str) -> None:
    assert httpx.get(f"{echo_url}/bytes/64?seed=7").content == httpx.get(f"{echo_url}/bytes/64?seed=7").content


def test_bytes_serves_the_10_mib_maximum_and_refuses_more(echo_url: str) -> None:
    assert len(httpx.get(f"{echo_url}/bytes/{10 * 1024 * 1024}").content) == 10 * 1024 * 1024
    assert_problem(httpx.get(f"{echo_url}/bytes/{10 * 1024 * 1024 + 1}"), 400, "between 0 and 10485760")


def test_a_body_over_10_mib_is_a_413_problem(echo_url: str) -> None:
    response = httpx.post(f"{echo_url}/post", content=b"x" * (10 * 1024 * 1024 + 1))

    assert response.status_code == 413
    assert response.headers["content-type"].startswith(PROBLEM_JSON)


def test_headers_and_healthz(echo_url: str) -> None:
    assert httpx.get(f"{echo_url}/headers", headers={"X-A": "1"}).json()["headers"]["X-A"] == "1"
    assert httpx.get(f"{echo_url}/healthz").json() == {"status": "ok", "product": "demo-echo"}


def test_openapi_document_is_valid_openapi_31_and_names_this_server(echo_url: str) -> None:
    document = httpx.get(f"{echo_url}/openapi.json").json()

    validate(document)
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": echo_url}]
    operation_ids = [
        operation["operationId"]
        for path in document["paths"].values()
        for key, operation in path.items()
        if key != "parameters"
    ]
    assert len(operation_ids) == len(set(operation_ids))
    assert {
        "/get",
        "/post",
        "/anything/{path}",
        "/status/{code}",
        "/delay/{seconds}",
        "/stream/{n}",
        "/bytes/{n}",
    } <= set(document["paths"])


def test_every_documented_get_operation_answers(echo_url: str) -> None:
    document = httpx.get(f"{echo_url}/openapi.json").json()
    samples = {"{path}": "x", "{code}": "200", "{seconds}": "0", "{n}": "1"}
    for template, item in document["paths"].items():
        if "get" not in item:
            continue
        path = template
        for placeholder, value in samples.items():
            path = path.replace(placeholder, value)
        assert httpx.get(f"{echo_url}{path}").status_code == 200, template


def test_a_client_hanging_up_mid_stream_is_not_a_server_error(echo_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with httpx.stream("GET", f"{echo_url}/stream/50?interval=0.02") as response:
        next(response.iter_lines())
    time.sleep(0.2)  # the server notices on its next write

    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []
