"""tests/gemini_server.py: the local server answers the real google-genai client as Google does.

Most tests drive it with the real async SDK client, so they also pin what the SDK sends and
raises; status headers the SDK hides are read with httpx directly. SDK retries stay off (its
default), so every SDK call below is exactly one HTTP request.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from google import genai
from google.genai import errors, types

from tests.gemini_server import (
    DEFAULT_API_KEY,
    FULL_DIMENSION,
    Fault,
    GeminiTestServer,
    ServerConfig,
    expected_embedding,
)
from tests.support import REPO

MODEL = "gemini-embedding-001"
BATCH_PATH = f"/v1/models/{MODEL}:batchEmbedContents"
#: The server is plain HTTP. Handing every client this empty TLS context spares each one from
#: loading the CA bundle (the SDK does it twice per client, about 0.2 s), which would
#: otherwise dominate this file's run time.
NO_CA_BUNDLE = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)

try:
    import httpx2

    TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.TransportError, httpx2.TransportError)
    TIMEOUT_ERRORS: tuple[type[Exception], ...] = (httpx.TimeoutException, httpx2.TimeoutException)
except ImportError:  # older SDKs talk through httpx itself
    TRANSPORT_ERRORS = (httpx.TransportError,)
    TIMEOUT_ERRORS = (httpx.TimeoutException,)


@pytest.fixture
def server() -> Iterator[GeminiTestServer]:
    with GeminiTestServer(ServerConfig()) as running:
        yield running


@asynccontextmanager
async def sdk_client(
    server: GeminiTestServer, key: str = DEFAULT_API_KEY, timeout_ms: int | None = None
) -> AsyncIterator[genai.Client]:
    options = types.HttpOptions(
        base_url=server.base_url,
        timeout=timeout_ms,
        client_args={"verify": NO_CA_BUNDLE},
        async_client_args={"verify": NO_CA_BUNDLE, "ssl": NO_CA_BUNDLE},
    )
    client = genai.Client(api_key=key, http_options=options)
    try:
        yield client
    finally:
        await client.aio.aclose()


async def embed(client: genai.Client, texts: list[str], dimension: int = 8) -> list[list[float]]:
    config = types.EmbedContentConfig(
        task_type="SEMANTIC_SIMILARITY", output_dimensionality=dimension
    )
    response = await client.aio.models.embed_content(model=MODEL, contents=texts, config=config)
    assert response.embeddings is not None
    return [list(embedding.values or []) for embedding in response.embeddings]


def batch_body(texts: list[str], dimension: int = 8) -> dict[str, Any]:
    """The body the SDK sends for a batch (see test_the_sdk_request_is_recorded_as_sent)."""
    return {
        "requests": [
            {
                "content": {"parts": [{"text": text}], "role": "user"},
                "taskType": "SEMANTIC_SIMILARITY",
                "outputDimensionality": dimension,
                "model": f"models/{MODEL}",
            }
            for text in texts
        ]
    }


async def post(
    server: GeminiTestServer, body: dict[str, Any], key: str | None = DEFAULT_API_KEY
) -> httpx.Response:
    headers = {"x-goog-api-key": key} if key is not None else {}
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=5, verify=NO_CA_BUNDLE
    ) as client:
        return await client.post(BATCH_PATH, json=body, headers=headers)


# --- embeddings -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_embeddings_have_one_vector_per_text_of_the_asked_dimension(
    server: GeminiTestServer,
) -> None:
    texts = ["apple", "pear", "river"]
    async with sdk_client(server) as client:
        vectors = await embed(client, texts, dimension=16)
    assert len(vectors) == 3
    assert all(len(vector) == 16 for vector in vectors)
    for text, vector in zip(texts, vectors, strict=True):
        assert np.array_equal(
            np.asarray(vector, dtype=np.float32), expected_embedding(MODEL, text, 16)
        )


@pytest.mark.asyncio
async def test_the_same_text_always_gets_the_same_vector_and_others_differ() -> None:
    first_server, second_server = GeminiTestServer(), GeminiTestServer(ServerConfig(seed=7))
    with first_server, second_server:
        async with sdk_client(first_server) as first, sdk_client(second_server) as second:
            once = await embed(first, ["apple", "pear"])
            again = await embed(first, ["pear", "apple"])
            elsewhere = await embed(second, ["apple"])
    assert once[0] == again[1] == elsewhere[0]
    assert once[1] == again[0]
    assert once[0] != once[1]


@pytest.mark.asyncio
async def test_only_the_full_dimension_is_unit_length_smaller_ones_are_its_prefix(
    server: GeminiTestServer,
) -> None:
    async with sdk_client(server) as client:
        (full,) = await embed(client, ["apple"], dimension=FULL_DIMENSION)
        (short,) = await embed(client, ["apple"], dimension=256)
    assert np.linalg.norm(full) == pytest.approx(1.0, abs=1e-6)
    assert short == full[:256]
    assert np.linalg.norm(short) < 0.5  # not renormalised, as the real API does


@pytest.mark.asyncio
async def test_the_sdk_request_is_recorded_as_sent(server: GeminiTestServer) -> None:
    async with sdk_client(server) as client:
        await embed(client, ["apple", "pear"], dimension=32)
    (arrival,) = server.arrivals()
    assert arrival.path == BATCH_PATH  # the SDK's default API version is v1
    assert arrival.model == MODEL
    assert arrival.texts == ("apple", "pear")
    assert arrival.text_count == 2
    assert arrival.dimension == 32
    assert arrival.api_key == DEFAULT_API_KEY
    assert (arrival.status, arrival.outcome) == (200, "ok")


@pytest.mark.asyncio
async def test_the_hand_written_batch_body_matches_what_the_sdk_sends(
    server: GeminiTestServer,
) -> None:
    response = await post(server, batch_body(["apple"], dimension=4))
    assert response.status_code == 200
    values = response.json()["embeddings"][0]["values"]
    assert np.array_equal(
        np.asarray(values, dtype=np.float32), expected_embedding(MODEL, "apple", 4)
    )


@pytest.mark.asyncio
async def test_single_embed_content_answers_one_embedding(server: GeminiTestServer) -> None:
    body = {"content": {"parts": [{"text": "apple"}]}, "outputDimensionality": 4}
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=5, verify=NO_CA_BUNDLE
    ) as client:
        response = await client.post(
            f"/v1beta/models/{MODEL}:embedContent",
            json=body,
            headers={"x-goog-api-key": DEFAULT_API_KEY},
        )
    assert response.status_code == 200
    assert len(response.json()["embedding"]["values"]) == 4


# --- client errors --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_more_than_100_texts_is_a_client_error_400(server: GeminiTestServer) -> None:
    async with sdk_client(server) as client:
        await embed(client, [f"word{index}" for index in range(100)])
        with pytest.raises(errors.ClientError) as caught:
            await embed(client, [f"word{index}" for index in range(101)])
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    assert "at most 100" in (caught.value.message or "")
    assert server.arrivals()[-1].outcome == "too_many_texts"


@pytest.mark.asyncio
async def test_a_wrong_key_is_a_client_error_400_api_key_invalid(server: GeminiTestServer) -> None:
    async with sdk_client(server, key="not-the-key") as client:
        with pytest.raises(errors.ClientError) as caught:
            await embed(client, ["apple"])
    assert (caught.value.code, caught.value.status) == (400, "INVALID_ARGUMENT")
    (info, _) = caught.value.details["error"]["details"]
    assert info["reason"] == "API_KEY_INVALID"
    assert server.arrivals()[0].api_key == "not-the-key"


@pytest.mark.asyncio
@pytest.mark.parametrize(("status", "name"), [(401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED")])
async def test_the_wrong_key_status_is_configurable(status: int, name: str) -> None:
    with GeminiTestServer(ServerConfig(invalid_key_status=status)) as server:
        async with sdk_client(server, key="not-the-key") as client:
            with pytest.raises(errors.ClientError) as caught:
                await embed(client, ["apple"])
    assert (caught.value.code, caught.value.status) == (status, name)


@pytest.mark.asyncio
async def test_a_missing_key_is_403_permission_denied_as_google_answers(
    server: GeminiTestServer,
) -> None:
    # The SDK refuses to build a client without a key, so this goes through httpx.
    response = await post(server, batch_body(["apple"]), key=None)
    assert response.status_code == 403
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"
    assert server.arrivals()[0].outcome == "missing_key"


@pytest.mark.asyncio
async def test_an_unserved_model_is_a_client_error_404() -> None:
    with GeminiTestServer(ServerConfig(models=frozenset({MODEL}))) as server:
        async with sdk_client(server) as client:
            with pytest.raises(errors.ClientError) as caught:
                config = types.EmbedContentConfig(output_dimensionality=8)
                await client.aio.models.embed_content(
                    model="text-embedding-004", contents=["apple"], config=config
                )
    assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")


# --- quota ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_quota_answers_429_with_retry_info_and_retry_after_then_recovers() -> None:
    window = 0.5
    with GeminiTestServer(ServerConfig(quota_requests=2, quota_window=window)) as server:
        statuses = [(await post(server, batch_body(["apple"]))).status_code for _ in range(2)]
        refused = await post(server, batch_body(["apple"]))
        first_admitted = server.arrivals()[0].time
        await asyncio.sleep(max(0.0, first_admitted + window + 0.02 - time.monotonic()))
        recovered = await post(server, batch_body(["apple"]))
        assert server.max_requests_in_any_window(window) == 3  # two admitted, one refused
        assert [arrival.outcome for arrival in server.arrivals()] == ["ok", "ok", "quota", "ok"]
    assert statuses == [200, 200]
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"  # whole seconds, rounded up
    error = refused.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    (retry_info,) = [d for d in error["details"] if d["@type"].endswith("google.rpc.RetryInfo")]
    delay = retry_info["retryDelay"]  # until the oldest admission leaves the window
    assert delay.endswith("s")
    assert 0 < float(delay[:-1]) <= window
    assert recovered.status_code == 200


@pytest.mark.asyncio
async def test_a_quota_429_reaches_sdk_callers_as_client_error_with_the_delay_and_header() -> None:
    config = ServerConfig(quota_requests=1, quota_window=60, quota_retry_delay=1.5)
    with GeminiTestServer(config) as server:
        async with sdk_client(server) as client:
            await embed(client, ["apple"])
            with pytest.raises(errors.ClientError) as caught:
                await embed(client, ["apple"])
    assert caught.value.code == 429
    details = caught.value.details["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"} in details
    assert caught.value.response.headers["retry-after"] == "2"


@pytest.mark.asyncio
async def test_the_daily_quota_answers_a_per_day_quota_failure_until_the_next_day() -> None:
    config = ServerConfig(daily_quota_requests=2, daily_quota_retry_delay=59.0)
    with GeminiTestServer(config) as server:
        statuses = [(await post(server, batch_body(["apple"]))).status_code for _ in range(2)]
        refused = [await post(server, batch_body(["apple"])) for _ in range(2)]
        server.new_day()
        next_day = await post(server, batch_body(["apple"]))
        outcomes = [arrival.outcome for arrival in server.arrivals()]

    assert statuses == [200, 200]
    assert [answer.status_code for answer in refused] == [429, 429]  # not after a minute either
    assert next_day.status_code == 200
    assert outcomes == ["ok", "ok", "daily_quota", "daily_quota", "ok"]
    error = refused[0].json()["error"]
    assert (error["code"], error["status"]) == (429, "RESOURCE_EXHAUSTED")
    (failure,) = [d for d in error["details"] if d["@type"].endswith("google.rpc.QuotaFailure")]
    (violation,) = failure["violations"]
    assert violation["quotaId"] == "EmbedContentRequestsPerDayPerProjectPerModel-FreeTier"
    assert violation["quotaValue"] == "2"
    assert violation["quotaDimensions"]["model"] == "gemini-embedding-001"
    # As Google does: a RetryInfo of under a minute, which says nothing about the day.
    (retry_info,) = [d for d in error["details"] if d["@type"].endswith("google.rpc.RetryInfo")]
    assert retry_info["retryDelay"] == "59s"
    assert refused[0].headers["Retry-After"] == "59"


@pytest.mark.asyncio
async def test_requests_refused_for_another_reason_do_not_spend_the_daily_quota() -> None:
    config = ServerConfig(daily_quota_requests=1, quota_requests=1, quota_window=60)
    with GeminiTestServer(config) as server:
        bad = await post(server, batch_body(["apple"]), key="not-the-key")
        first = await post(server, batch_body(["apple"]))
        spent = await post(server, batch_body(["apple"]))

    assert (bad.status_code, first.status_code, spent.status_code) == (400, 200, 429)
    assert "PerDay" in spent.text  # the day is spent before the minute is looked at


# --- scripted and random failures -----------------------------------------------------


@pytest.mark.asyncio
async def test_scripted_503s_are_server_errors_and_the_sdk_does_not_retry(
    server: GeminiTestServer,
) -> None:
    server.fail_next(2, 503)
    async with sdk_client(server) as client:
        for _ in range(2):
            with pytest.raises(errors.ServerError) as caught:
                await embed(client, ["apple"])
            assert (caught.value.code, caught.value.status) == (503, "UNAVAILABLE")
        assert len(await embed(client, ["apple"])) == 1
    assert [arrival.status for arrival in server.arrivals()] == [503, 503, 200]


@pytest.mark.asyncio
async def test_a_scripted_failure_wins_over_a_bad_key(server: GeminiTestServer) -> None:
    server.fail_next(1, 500)
    async with sdk_client(server, key="not-the-key") as client:
        with pytest.raises(errors.ServerError):
            await embed(client, ["apple"])
        with pytest.raises(errors.ClientError):
            await embed(client, ["apple"])


@pytest.mark.asyncio
async def test_a_dropped_connection_is_an_http_transport_error(server: GeminiTestServer) -> None:
    server.fail_next(1, Fault.DROP)
    async with sdk_client(server) as client:
        with pytest.raises(TRANSPORT_ERRORS):
            await embed(client, ["apple"])
        assert len(await embed(client, ["apple"])) == 1  # the client reconnects
    assert [arrival.outcome for arrival in server.arrivals()] == ["drop", "ok"]
    assert server.arrivals()[0].status is None


@pytest.mark.asyncio
async def test_a_garbage_body_makes_the_sdk_raise_a_json_decode_error(
    server: GeminiTestServer,
) -> None:
    server.fail_next(1, Fault.GARBAGE)
    async with sdk_client(server) as client:
        with pytest.raises(json.JSONDecodeError):
            await embed(client, ["apple"])


@pytest.mark.asyncio
async def test_wrong_counts_and_dimensions_pass_the_sdk_unchecked(server: GeminiTestServer) -> None:
    server.fail_next(1, Fault.WRONG_COUNT)
    server.fail_next(1, Fault.WRONG_DIMENSION)
    async with sdk_client(server) as client:
        short_list = await embed(client, ["apple", "pear"], dimension=8)
        short_vectors = await embed(client, ["apple", "pear"], dimension=8)
    assert len(short_list) == 1
    assert [len(vector) for vector in short_vectors] == [7, 7]


@pytest.mark.asyncio
async def test_a_slow_answer_past_the_sdk_timeout_is_an_http_timeout(
    server: GeminiTestServer,
) -> None:
    server.delay_next(1, 2.0)
    async with sdk_client(server, timeout_ms=200) as client:
        started = time.monotonic()
        with pytest.raises(TIMEOUT_ERRORS):
            await embed(client, ["apple"])
    assert time.monotonic() - started < 1.5


def test_random_failures_repeat_with_the_same_seed() -> None:
    config = ServerConfig(
        seed=3, server_error_rate=0.2, unavailable_rate=0.2, garbage_rate=0.1, wrong_count_rate=0.1
    )

    def outcomes() -> list[str]:
        with (
            GeminiTestServer(config) as server,
            httpx.Client(base_url=server.base_url, verify=NO_CA_BUNDLE) as client,
        ):
            for _ in range(40):
                client.post(
                    BATCH_PATH,
                    json=batch_body(["apple", "pear"]),
                    headers={"x-goog-api-key": DEFAULT_API_KEY},
                )
            return [arrival.outcome for arrival in server.arrivals()]

    first = outcomes()
    assert first == outcomes()
    assert {"ok", "server_error", "unavailable", "garbage", "wrong_count"} <= set(first)


# --- statistics -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_arrivals_in_flight_peak_and_text_counts_are_recorded() -> None:
    with GeminiTestServer(ServerConfig(latency=0.2)) as server:
        async with sdk_client(server) as client:
            batches = [["apple", "pear"], ["apple"], ["river"], ["apple", "stone"], ["pear"]]
            await asyncio.gather(*(embed(client, texts) for texts in batches))
            assert server.request_count == 5
            assert server.max_in_flight == 5
            assert server.texts_requested() == {"apple": 3, "pear": 2, "river": 1, "stone": 1}
            assert server.max_requests_in_any_window(1.0) == 5
            # The client may hold its answer a moment before the handler thread counts
            # the request as done: wait (bounded) until the server says none is in flight.
            for _ in range(200):
                if server.in_flight == 0:
                    break
                await asyncio.sleep(0.01)
            server.reset_stats()
            assert (server.request_count, server.max_in_flight) == (0, 0)
            await embed(client, ["apple"])
            assert server.texts_requested(answered_only=True) == {"apple": 1}


def test_closing_cuts_a_request_sleeping_out_a_long_delay_promptly() -> None:
    server = GeminiTestServer().start()
    server.delay_next(1, 30.0)
    closer = threading.Timer(0.2, server.close)  # closes while the request is held
    with httpx.Client(base_url=server.base_url, timeout=10, verify=NO_CA_BUNDLE) as client:
        started = time.monotonic()
        closer.start()
        with pytest.raises(httpx.TransportError):
            client.post(
                BATCH_PATH,
                json=batch_body(["apple"]),
                headers={"x-goog-api-key": DEFAULT_API_KEY},
            )
    closer.join(timeout=5)
    assert time.monotonic() - started < 3
    assert server.arrivals()[0].outcome == "shutdown"


# --- standalone process ---------------------------------------------------------------


def test_the_standalone_server_prints_its_url_serves_and_writes_stats_on_sigterm(
    tmp_path: Path,
) -> None:
    stats_file = tmp_path / "stats.json"
    command = [
        sys.executable,
        "-m",
        "tests.gemini_server",
        "--port",
        "0",
        "--latency",
        "0.05",
        "--key",
        "k1",
        "--stats-file",
        str(stats_file),
        "--lifetime",
        "60",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=base_url, timeout=5, verify=NO_CA_BUNDLE) as client:
            ok = client.post(
                BATCH_PATH, json=batch_body(["apple", "pear"]), headers={"x-goog-api-key": "k1"}
            )
            refused = client.post(
                BATCH_PATH, json=batch_body(["apple"]), headers={"x-goog-api-key": "k2"}
            )
        assert ok.status_code == 200
        assert refused.status_code == 400
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == 0, stderr
    stats = json.loads(stats_file.read_text(encoding="utf-8"))
    assert stats["request_count"] == 2
    assert stats["outcomes"] == {"ok": 1, "bad_key": 1}
    assert stats["texts_requested"] == {"apple": 2, "pear": 1}
    assert stats["arrivals"][0]["path"] == BATCH_PATH
