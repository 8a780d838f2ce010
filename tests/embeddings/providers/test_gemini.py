"""asyncpipe.embeddings.providers.gemini: the Gemini provider over both transports, against local servers.

Every test runs once per transport (`rest`: httpx + msgspec; `sdk`: the google-genai
client), against the in-process `GeminiTestServer`, so both map the same answers to
the same vectors and the same errors. The few answers that server cannot give (a 429
carrying only Retry-After, an error message that echoes the key) come from
`FixedAnswerServer`, a real HTTP server that answers every request the same way.

The key is distinctive, so that finding it in an error message cannot be chance.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import numpy as np
import pytest

from asyncpipe.embeddings.providers.gemini import GeminiProvider
from asyncpipe.errors import (
    DailyQuotaSpent,
    EmbeddingError,
    FatalEmbeddingError,
    RetryableEmbeddingError,
)
from asyncpipe.settings.sections import Gemini
from tests.gemini_server import (
    FULL_DIMENSION,
    Fault,
    GeminiTestServer,
    ServerConfig,
    expected_embedding,
)

KEY = "AIzaSy-asyncpipe-PROVIDER-7f3c9e1d0b"
WRONG_KEY = "AIzaSy-asyncpipe-WRONG-5a8e2c4f61"
MODEL = "gemini-embedding-001"
DIMENSION = 64
TRANSPORTS = ("rest", "sdk")


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server() -> Iterator[GeminiTestServer]:
    with GeminiTestServer(ServerConfig(valid_keys=frozenset({KEY}))) as running:
        yield running


def settings(base_url: str | None, transport: str, **changes: Any) -> Gemini:
    values: dict[str, Any] = {
        "base_url": base_url,
        "transport": transport,
        "embedding_dimension": DIMENSION,
        "request_timeout": 5.0,
    }
    values.update(changes)
    return Gemini(**values)


@asynccontextmanager
async def gemini(
    base_url: str | None, transport: str, key: str = KEY, **changes: Any
) -> AsyncIterator[GeminiProvider]:
    provider = GeminiProvider(settings(base_url, transport, **changes), key)
    try:
        yield provider
    finally:
        await provider.aclose()


def unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def assert_keys_hidden(error: BaseException) -> None:
    """Neither key shows in the message, the repr, the args or the printed traceback."""
    shown = [str(error), repr(error), *map(str, error.args)]
    shown.append("".join(traceback.format_exception(error)))
    for key in (KEY, WRONG_KEY):
        assert all(key not in text for text in shown), shown


async def embedding_error(provider: GeminiProvider, texts: list[str] | None = None) -> Any:
    """The EmbeddingError that embedding `texts` raises, checked to hide the keys."""
    with pytest.raises(EmbeddingError) as caught:
        await provider.embed(texts or ["apple", "pear"])
    assert_keys_hidden(caught.value)
    return caught.value


# --- vectors --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_embed_returns_one_unit_vector_per_text_in_order(
    server: GeminiTestServer, transport: str
) -> None:
    texts = ["river", "Musical instruments", "apple", "pear"]
    async with gemini(server.base_url, transport) as provider:
        vectors = await provider.embed(texts)

    assert vectors.shape == (4, DIMENSION)
    assert vectors.dtype == np.float32
    for text, vector in zip(texts, vectors, strict=True):
        expected = unit(expected_embedding(MODEL, text, DIMENSION))
        np.testing.assert_allclose(vector, expected, atol=1e-6)


@pytest.mark.asyncio
async def test_full_size_vectors_are_returned_exactly_as_the_server_sent_them(
    server: GeminiTestServer, transport: str
) -> None:
    async with gemini(server.base_url, transport, embedding_dimension=FULL_DIMENSION) as provider:
        vectors = await provider.embed(["apple", "pear"])

    assert vectors.shape == (2, FULL_DIMENSION)
    assert np.array_equal(vectors[0], expected_embedding(MODEL, "apple"))
    assert np.array_equal(vectors[1], expected_embedding(MODEL, "pear"))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


@pytest.mark.asyncio
async def test_full_size_vectors_decoded_in_a_spawned_worker_are_those_the_server_sent(
    server: GeminiTestServer,
) -> None:
    texts = [f"word {n}" for n in range(100)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        async with gemini(server.base_url, "rest", embedding_dimension=FULL_DIMENSION) as provider:
            provider.decode_in(pool)
            vectors = await provider.embed(texts)

    assert vectors.dtype == np.float32
    assert np.array_equal(vectors, np.stack([expected_embedding(MODEL, text) for text in texts]))


@pytest.mark.asyncio
async def test_768_dimension_vectors_are_normalised_by_the_provider(
    server: GeminiTestServer, transport: str
) -> None:
    sent = expected_embedding(MODEL, "apple", 768)
    assert np.linalg.norm(sent) < 0.9  # the server sends the prefix, not renormalised

    async with gemini(server.base_url, transport, embedding_dimension=768) as provider:
        (vector,) = await provider.embed(["apple"])

    assert vector.shape == (768,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(vector, unit(sent), atol=1e-6)


@pytest.mark.asyncio
async def test_a_batch_is_one_request_carrying_the_model_dimension_and_key(
    server: GeminiTestServer, transport: str
) -> None:
    async with gemini(server.base_url, transport) as provider:
        await provider.embed(["apple", "pear", "river"])

    (arrival,) = server.arrivals()
    assert arrival.path.endswith(f"/models/{MODEL}:batchEmbedContents")
    assert arrival.texts == ("apple", "pear", "river")
    assert (arrival.model, arrival.dimension, arrival.api_key) == (MODEL, DIMENSION, KEY)
    assert (arrival.status, arrival.outcome) == (200, "ok")


@pytest.mark.asyncio
@pytest.mark.parametrize("api_version", ["v1beta", "v1"])
async def test_requests_go_to_the_configured_api_version(
    server: GeminiTestServer, transport: str, api_version: str
) -> None:
    async with gemini(server.base_url, transport, api_version=api_version) as provider:
        await provider.embed(["apple"])

    (arrival,) = server.arrivals()
    assert arrival.path == f"/{api_version}/models/{MODEL}:batchEmbedContents"


@pytest.mark.asyncio
async def test_the_address_can_come_from_GOOGLE_GEMINI_BASE_URL(
    server: GeminiTestServer, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.base_url)

    async with gemini(None, transport) as provider:
        vectors = await provider.embed(["apple"])

    assert vectors.shape == (1, DIMENSION)
    assert server.request_count == 1


# --- fatal errors ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_more_texts_than_the_api_allows_is_a_fatal_400(
    server: GeminiTestServer, transport: str
) -> None:
    async with gemini(server.base_url, transport) as provider:
        error = await embedding_error(provider, [f"word{number}" for number in range(101)])

    assert isinstance(error, FatalEmbeddingError)
    assert error.status == 400
    assert "100" in str(error)


@pytest.mark.asyncio
async def test_a_wrong_key_is_fatal_with_its_status_and_never_shown(transport: str) -> None:
    with GeminiTestServer(ServerConfig(valid_keys=frozenset({KEY}))) as server:
        async with gemini(server.base_url, transport, key=WRONG_KEY) as provider:
            for status in (400, 401, 403):
                server.reconfigure(replace(server.config, invalid_key_status=status))
                error = await embedding_error(provider)

                assert isinstance(error, FatalEmbeddingError), status
                assert error.status == status

    assert [arrival.api_key for arrival in server.arrivals()] == [WRONG_KEY] * 3


@pytest.mark.asyncio
async def test_an_unknown_model_is_a_fatal_404(transport: str) -> None:
    config = ServerConfig(valid_keys=frozenset({KEY}), models=frozenset({MODEL}))
    with GeminiTestServer(config) as server:
        async with gemini(server.base_url, transport, model_id="no-such-model") as provider:
            error = await embedding_error(provider)

    assert isinstance(error, FatalEmbeddingError)
    assert error.status == 404


# --- retryable errors -----------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("retry_after_header", [True, False])
async def test_a_quota_429_is_retryable_with_the_retry_info_delay(
    transport: str, retry_after_header: bool
) -> None:
    # RetryInfo says 2.5 s; the Retry-After header, in whole seconds, says 3: RetryInfo wins.
    config = ServerConfig(
        valid_keys=frozenset({KEY}),
        quota_requests=1,
        quota_retry_delay=2.5,
        retry_after_header=retry_after_header,
    )
    with GeminiTestServer(config) as server:
        async with gemini(server.base_url, transport) as provider:
            await provider.embed(["apple"])
            error = await embedding_error(provider)

    assert isinstance(error, RetryableEmbeddingError)
    assert error.status == 429 and error.throttled
    assert error.retry_after == 2.5
    assert [arrival.outcome for arrival in server.arrivals()] == ["ok", "quota"]


@pytest.mark.asyncio
async def test_a_per_day_quota_429_is_a_spent_day_not_a_retryable_error(transport: str) -> None:
    # The server's per-day 429 carries a RetryInfo of 59 s, as Google's does: not obeyed.
    config = ServerConfig(valid_keys=frozenset({KEY}), daily_quota_requests=1)
    with GeminiTestServer(config) as server:
        async with gemini(server.base_url, transport) as provider:
            await provider.embed(["apple"])
            error = await embedding_error(provider)

    assert isinstance(error, DailyQuotaSpent)
    assert not isinstance(error, RetryableEmbeddingError)
    assert error.status == 429
    assert "EmbedContentRequestsPerDayPerProjectPerModel-FreeTier" in str(error)
    assert [arrival.outcome for arrival in server.arrivals()] == ["ok", "daily_quota"]


@pytest.mark.asyncio
async def test_a_429_without_retry_info_takes_its_delay_from_retry_after(transport: str) -> None:
    # The test server always sends RetryInfo with a 429, so these answers come from a plain one.
    with FixedAnswerServer(429) as fixed:
        async with gemini(fixed.base_url, transport) as provider:
            for header, expected in (("7", 7.0), ("0.5", 0.5), (None, None)):
                fixed.retry_after = header
                error = await embedding_error(provider)

                assert isinstance(error, RetryableEmbeddingError), header
                assert error.status == 429 and error.throttled
                assert error.retry_after == expected, header


@pytest.mark.asyncio
async def test_server_errors_are_retryable_with_their_status(
    server: GeminiTestServer, transport: str
) -> None:
    async with gemini(server.base_url, transport) as provider:
        for status in (408, 500, 502, 503, 504):
            server.fail_next(1, status)
            error = await embedding_error(provider)
            recovered = await provider.embed(["apple"])

            assert isinstance(error, RetryableEmbeddingError), status
            assert error.status == status
            assert not error.throttled
            assert error.retry_after is None
            assert recovered.shape == (1, DIMENSION)


@pytest.mark.asyncio
async def test_a_503_with_retry_info_carries_its_delay(
    server: GeminiTestServer, transport: str
) -> None:
    server.fail_next(1, 503, retry_delay=4.0)
    async with gemini(server.base_url, transport) as provider:
        error = await embedding_error(provider)

    assert isinstance(error, RetryableEmbeddingError)
    assert (error.status, error.retry_after) == (503, 4.0)


@pytest.mark.asyncio
async def test_a_dropped_connection_is_retryable_and_the_next_request_works(
    server: GeminiTestServer, transport: str
) -> None:
    async with gemini(server.base_url, transport) as provider:
        await provider.embed(["warm"])  # a kept-alive connection that the server then cuts
        server.fail_next(1, Fault.DROP)
        error = await embedding_error(provider)
        recovered = await provider.embed(["apple"])

    assert isinstance(error, RetryableEmbeddingError)
    assert error.status is None
    np.testing.assert_allclose(
        recovered[0], unit(expected_embedding(MODEL, "apple", DIMENSION)), atol=1e-6
    )


@pytest.mark.asyncio
async def test_an_answer_slower_than_request_timeout_is_retryable(
    server: GeminiTestServer, transport: str
) -> None:
    server.delay_next(1, 3.0)
    async with gemini(server.base_url, transport, request_timeout=0.3) as provider:
        started = time.perf_counter()
        error = await embedding_error(provider)
        waited = time.perf_counter() - started

    assert isinstance(error, RetryableEmbeddingError)
    assert error.status is None
    assert "timed out" in str(error)
    assert waited < 2.0


@pytest.mark.asyncio
async def test_a_malformed_answer_is_retryable(server: GeminiTestServer, transport: str) -> None:
    faults = [Fault.WRONG_DIMENSION, Fault.WRONG_COUNT, Fault.GARBAGE]
    async with gemini(server.base_url, transport) as provider:
        for fault in faults:
            server.fail_next(1, fault)
            error = await embedding_error(provider, ["apple", "pear", "river"])

            assert isinstance(error, RetryableEmbeddingError), fault
            assert error.status is None

    assert [arrival.outcome for arrival in server.arrivals()] == [fault.value for fault in faults]


@pytest.mark.asyncio
async def test_a_key_echoed_back_by_the_server_is_masked_in_the_error(transport: str) -> None:
    with FixedAnswerServer(400, echo_key=True) as fixed:
        async with gemini(fixed.base_url, transport) as provider:
            for status in (400, 403, 429, 503):
                fixed.status = status
                error = await embedding_error(provider)

                assert error.status == status
                assert "***" in str(error)  # the echoed key was there, and was replaced


# --- closing --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_aclose_closes_every_connection_to_the_server(
    server: GeminiTestServer, transport: str
) -> None:
    provider = GeminiProvider(settings(server.base_url, transport), KEY)
    await provider.embed(["apple"])
    assert open_connections_to(server.port) >= 1  # kept alive for the next request

    await provider.aclose()

    assert open_connections_to(server.port) == 0


@pytest.mark.asyncio
async def test_aclose_of_a_provider_that_never_sent_a_request_is_clean(
    server: GeminiTestServer, transport: str
) -> None:
    provider = GeminiProvider(settings(server.base_url, transport), KEY)

    await provider.aclose()

    assert server.request_count == 0
    assert open_connections_to(server.port) == 0


def open_connections_to(port: int) -> int:
    """Established TCP connections from this machine to 127.0.0.1:`port` (Linux /proc)."""
    table = Path("/proc/net/tcp")
    if not table.exists():
        pytest.skip("needs Linux /proc/net/tcp to see open connections")
    count = 0
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        if remote_port == port and fields[3] == "01":  # 01: ESTABLISHED
            count += 1
    return count


# --- a server with one fixed answer -----------------------------------------------------


class FixedAnswerServer:
    """Answers every POST with `status`, a Google-shaped error body and optional headers."""

    def __init__(self, status: int, retry_after: str | None = None, echo_key: bool = False) -> None:
        self.status = status
        self.retry_after = retry_after
        self.echo_key = echo_key
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _FixedAnswerHandler)
        self._httpd.daemon_threads = True
        self._httpd.fixed = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=2)


class _FixedAnswerHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # http.server's naming
        fixed: FixedAnswerServer = self.server.fixed  # type: ignore[attr-defined]
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = self.headers.get("x-goog-api-key")
        message = f"API key {key} is not allowed here." if fixed.echo_key else "Refused."
        body = json.dumps(
            {"error": {"code": fixed.status, "message": message, "status": "TEST"}}
        ).encode()
        self.send_response(fixed.status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        if fixed.retry_after is not None:
            self.send_header("Retry-After", fixed.retry_after)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass
