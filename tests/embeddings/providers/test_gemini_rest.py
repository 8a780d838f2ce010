"""The REST transport's error mapping, through the real provider over `httpx.MockTransport`.

No server and no network: each test answers the provider's request with a
handler, so every status, malformed answer, reset and timeout is checked in
milliseconds. The end-to-end behaviour against the local Gemini-compatible
server (both transports) is in test_gemini.py.

The tests of good and malformed answers run twice: decoded on the event loop,
and decoded in a real spawned worker process (`decode_in`), where the same
answers must give the same vectors and the same errors.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest

from asyncpipe.embeddings.providers.gemini import FULL_DIMENSION, GeminiProvider
from asyncpipe.errors import FatalEmbeddingError, RetryableEmbeddingError
from asyncpipe.settings.sections import Gemini

KEY = "test-key-0123456789"
DIMENSION = 8
Handler = Callable[[httpx.Request], httpx.Response]


def settings(**changes: Any) -> Gemini:
    values: dict[str, Any] = {
        "base_url": "https://gemini.invalid",
        "embedding_dimension": DIMENSION,
        **changes,
    }
    return Gemini(**values)


@pytest.fixture(scope="module")
def worker_pool() -> Iterator[ProcessPoolExecutor]:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        yield pool


@pytest.fixture(params=["on-the-loop", "in-a-worker"])
def decoder(request: pytest.FixtureRequest, worker_pool: ProcessPoolExecutor) -> Executor | None:
    """Where answers are decoded: None (the event loop) or a spawned worker process."""
    return worker_pool if request.param == "in-a-worker" else None


def provider(handler: Handler, **changes: Any) -> GeminiProvider:
    return GeminiProvider(settings(**changes), KEY, http_transport=httpx.MockTransport(handler))


async def embed(
    handler: Handler,
    texts: list[str] | None = None,
    decoder: Executor | None = None,
    **changes: Any,
) -> np.ndarray:
    gemini = provider(handler, **changes)
    gemini.decode_in(decoder)
    try:
        return await gemini.embed(texts or ["apple", "pear"])
    finally:
        await gemini.aclose()


def answer(vectors: list[list[float]]) -> httpx.Response:
    return httpx.Response(200, json={"embeddings": [{"values": v} for v in vectors]})


def vectors_for(request: httpx.Request, dimension: int = DIMENSION) -> list[list[float]]:
    texts = len(json.loads(request.content)["requests"])
    return [[float(n + 1)] * dimension for n in range(texts)]


def status(code: int, body: Any = None, headers: dict[str, str] | None = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        content = json.dumps(body).encode() if body is not None else b""
        return httpx.Response(code, content=content, headers=headers)

    return handler


def google_error(code: int, reason: str, message: str, *details: dict[str, Any]) -> dict[str, Any]:
    return {"error": {"code": code, "status": reason, "message": message, "details": list(details)}}


def retry_info(delay: str) -> dict[str, str]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


def raises(error: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    return handler


# What is sent and what comes back ----------------------------------------------------------


@pytest.mark.asyncio
async def test_a_batch_is_one_post_carrying_the_model_task_dimension_and_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(vectors_for(request))

    await embed(handler, ["apple", "pear", "fig"])

    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == (
        "https://gemini.invalid/v1beta/models/gemini-embedding-001:batchEmbedContents"
    )
    assert request.headers["x-goog-api-key"] == KEY
    assert json.loads(request.content) == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": text}]},
                "taskType": "SEMANTIC_SIMILARITY",
                "outputDimensionality": DIMENSION,
            }
            for text in ["apple", "pear", "fig"]
        ]
    }


@pytest.mark.asyncio
async def test_vectors_below_full_size_come_back_unit_length_float32_in_order(
    decoder: Executor | None,
) -> None:
    vectors = await embed(lambda request: answer(vectors_for(request)), decoder=decoder)

    assert vectors.dtype == np.float32
    assert vectors.shape == (2, DIMENSION)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(vectors, np.full((2, DIMENSION), DIMENSION**-0.5), rtol=1e-6)


@pytest.mark.asyncio
async def test_full_size_vectors_are_returned_exactly_as_sent(decoder: Executor | None) -> None:
    sent = [[0.5] * FULL_DIMENSION, [-0.25] * FULL_DIMENSION]

    vectors = await embed(
        lambda request: answer(sent), decoder=decoder, embedding_dimension=FULL_DIMENSION
    )

    np.testing.assert_array_equal(vectors, np.asarray(sent, dtype=np.float32))


# Statuses ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (400, "INVALID_ARGUMENT"),
        (401, "UNAUTHENTICATED"),
        (403, "PERMISSION_DENIED"),
        (404, "NOT_FOUND"),
        (409, "ABORTED"),
        (422, "UNPROCESSABLE"),
    ],
)
@pytest.mark.asyncio
async def test_client_errors_are_fatal_with_their_status_and_reason(code: int, reason: str) -> None:
    handler = status(code, google_error(code, reason, "no good"))

    with pytest.raises(FatalEmbeddingError) as raised:
        await embed(handler)

    assert raised.value.status == code
    assert str(raised.value) == f"Gemini API answered {code} {reason}: no good"


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503, 504])
@pytest.mark.asyncio
async def test_timeouts_quota_and_server_errors_are_retryable_with_their_status(code: int) -> None:
    handler = status(code, google_error(code, "UNAVAILABLE", "later"))

    with pytest.raises(RetryableEmbeddingError) as raised:
        await embed(handler)

    assert raised.value.status == code
    assert raised.value.retry_after is None  # the server asked for no delay
    assert raised.value.throttled == (code == 429)


@pytest.mark.asyncio
async def test_a_429_carries_the_retry_info_delay() -> None:
    body = google_error(429, "RESOURCE_EXHAUSTED", "quota", retry_info("2.5s"))

    with pytest.raises(RetryableEmbeddingError) as raised:
        await embed(status(429, body))

    assert (raised.value.status, raised.value.retry_after) == (429, 2.5)
    assert raised.value.throttled


@pytest.mark.asyncio
async def test_a_429_without_retry_info_takes_retry_after() -> None:
    body = google_error(429, "RESOURCE_EXHAUSTED", "quota")

    with pytest.raises(RetryableEmbeddingError) as raised:
        await embed(status(429, body, {"retry-after": "7"}))

    assert raised.value.retry_after == 7.0


@pytest.mark.asyncio
async def test_retry_info_wins_over_retry_after() -> None:
    body = google_error(429, "RESOURCE_EXHAUSTED", "quota", retry_info("3s"))

    with pytest.raises(RetryableEmbeddingError) as raised:
        await embed(status(429, body, {"retry-after": "30"}))

    assert raised.value.retry_after == 3.0


@pytest.mark.asyncio
async def test_a_retry_after_given_as_a_date_leaves_the_delay_to_the_backoff() -> None:
    headers = {"retry-after": "Wed, 21 Oct 2065 07:28:00 GMT"}

    with pytest.raises(RetryableEmbeddingError) as raised:
        await embed(status(429, google_error(429, "RESOURCE_EXHAUSTED", "quota"), headers))

    assert raised.value.retry_after is None


@pytest.mark.asyncio
async def test_a_503_with_retry_info_carries_its_delay() -> None:
    body = google_error(503, "UNAVAILABLE", "overloaded", retry_info("4s"))

    with pytest.raises(RetryableEmbeddingError) as raised:
        await embed(status(503, body))

    assert (raised.value.status, raised.value.retry_after) == (503, 4.0)


@pytest.mark.asyncio
async def test_an_error_answer_that_is_not_json_keeps_its_status() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, content=b"<html>Bad Gateway</html>")

    with pytest.raises(RetryableEmbeddingError) as raised:
        await embed(handler)

    assert raised.value.status == 502
    # (A trailing space is left where the reason would be: today's message, kept.)
    assert str(raised.value).rstrip() == "Gemini API answered 502"


@pytest.mark.asyncio
async def test_a_key_echoed_back_in_an_error_is_masked() -> None:
    body = google_error(400, "INVALID_ARGUMENT", f"API key {KEY} not valid")

    with pytest.raises(FatalEmbeddingError) as raised:
        await embed(status(400, body))

    assert KEY not in str(raised.value)
    assert "API key *** not valid" in str(raised.value)
    assert raised.value.status == 400


# Malformed answers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"not json at all", "not an embedding batch"),
        (b'{"embeddings": "many"}', "not an embedding batch"),
        (b'{"predictions": []}', "not an embedding batch"),
        (b'{"embeddings": [{"values": ["a", "b"]}]}', "not an embedding batch"),
    ],
    ids=["not-json", "wrong-type", "no-embeddings", "strings"],
)
@pytest.mark.asyncio
async def test_an_answer_that_is_not_an_embedding_batch_is_retryable(
    content: bytes, expected: str, decoder: Executor | None
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=content)

    with pytest.raises(RetryableEmbeddingError, match=expected) as raised:
        await embed(handler, decoder=decoder)

    assert raised.value.status is None


@pytest.mark.parametrize(
    ("vectors", "expected"),
    [
        ([[1.0] * DIMENSION], "holds 1 vectors for 2 texts"),
        ([[1.0] * DIMENSION] * 3, "holds 3 vectors for 2 texts"),
        ([[1.0] * (DIMENSION - 1)] * 2, r"shape \(7,\), expected \(8,\)"),
        ([[1.0] * DIMENSION, [1.0] * (DIMENSION + 1)], "unequal sizes"),
        ([[1.0] * DIMENSION, [1e39] * DIMENSION], "non-finite"),
        ([[1.0] * DIMENSION, [0.0] * DIMENSION], "zero vector"),
    ],
    ids=["too-few", "too-many", "wrong-dimension", "unequal", "overflow", "zero"],
)
@pytest.mark.asyncio
async def test_an_answer_of_the_wrong_count_size_or_values_is_retryable(
    vectors: list[list[float]], expected: str, decoder: Executor | None
) -> None:
    with (
        pytest.raises(RetryableEmbeddingError, match=expected) as raised,
        np.errstate(over="ignore"),  # 1e39 overflows float32 to inf: that is the point
    ):
        await embed(lambda request: answer(vectors), decoder=decoder)

    assert (raised.value.status, raised.value.retry_after) == (None, None)


@pytest.mark.asyncio
async def test_receive_checks_the_status_and_leaves_the_decoding_to_the_answer(
    decoder: Executor | None,
) -> None:
    # What the engine relies on to free the request slot before the decoding: a 200
    # comes back as undecoded bytes, and a malformed one fails only when decoded.
    gemini = provider(lambda request: httpx.Response(200, content=b"{not json"))
    gemini.decode_in(decoder)
    failing = provider(status(503, google_error(503, "UNAVAILABLE", "overloaded")))
    try:
        received = await gemini.receive(["apple", "pear"])
        with pytest.raises(RetryableEmbeddingError, match="not an embedding batch"):
            await received.vectors()
        with pytest.raises(RetryableEmbeddingError) as raised:
            await failing.receive(["apple"])
    finally:
        await gemini.aclose()
        await failing.aclose()

    assert raised.value.status == 503


@pytest.mark.asyncio
async def test_a_batch_of_many_vectors_comes_back_in_order_and_a_row_of_another_size_is_found(
    decoder: Executor | None,
) -> None:
    # 25 vectors, normalised in order; one row of another size among them is refused.
    texts = [f"text {n}" for n in range(25)]
    vectors = [[float(n + 1), 1.0, *([0.0] * (DIMENSION - 2))] for n in range(25)]

    matrix = await embed(lambda request: answer(vectors), texts, decoder=decoder)

    expected = np.asarray(vectors, dtype=np.float64)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(matrix, expected.astype(np.float32), rtol=1e-6)
    ragged = [*vectors[:21], [1.0] * (DIMENSION + 1), *vectors[22:]]
    with pytest.raises(RetryableEmbeddingError, match="unequal sizes"):
        await embed(lambda request: answer(ragged), texts, decoder=decoder)


@pytest.mark.asyncio
async def test_decoding_goes_back_to_the_loop_when_the_executor_is_taken_away(
    worker_pool: ProcessPoolExecutor,
) -> None:
    gemini = provider(lambda request: answer(vectors_for(request)))
    try:
        gemini.decode_in(worker_pool)
        in_worker = await gemini.embed(["apple", "pear"])
        gemini.decode_in(None)
        on_loop = await gemini.embed(["apple", "pear"])
    finally:
        await gemini.aclose()

    np.testing.assert_array_equal(in_worker, on_loop)


# The connection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadError("connection reset by peer"),
        httpx.RemoteProtocolError("server disconnected without sending a response"),
        httpx.WriteError("broken pipe"),
    ],
    ids=lambda error: type(error).__name__,
)
@pytest.mark.asyncio
async def test_a_dropped_or_refused_connection_is_retryable(error: httpx.TransportError) -> None:
    with pytest.raises(RetryableEmbeddingError) as raised:
        await embed(raises(error))

    assert str(raised.value) == f"the embedding request failed ({type(error).__name__})"
    assert (raised.value.status, raised.value.retry_after) == (None, None)


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectTimeout("connect timed out"),
        httpx.ReadTimeout("read timed out"),
        httpx.WriteTimeout("write timed out"),
        httpx.PoolTimeout("pool timed out"),
    ],
    ids=lambda error: type(error).__name__,
)
@pytest.mark.asyncio
async def test_a_timeout_is_retryable_and_says_it_timed_out(error: httpx.TimeoutException) -> None:
    with pytest.raises(RetryableEmbeddingError) as raised:
        await embed(raises(error))

    assert str(raised.value) == f"the embedding request timed out ({type(error).__name__})"


@pytest.mark.asyncio
async def test_the_provider_works_again_after_a_reset() -> None:
    answers: list[Exception | None] = [httpx.ReadError("reset"), None]

    def handler(request: httpx.Request) -> httpx.Response:
        error = answers.pop(0)
        if error is not None:
            raise error
        return answer(vectors_for(request))

    gemini = provider(handler)
    try:
        with pytest.raises(RetryableEmbeddingError):
            await gemini.embed(["apple"])
        vectors = await gemini.embed(["apple"])
    finally:
        await gemini.aclose()

    assert vectors.shape == (1, DIMENSION)


@pytest.mark.asyncio
async def test_aclose_closes_the_given_transport() -> None:
    class Recording(httpx.MockTransport):
        closed = False

        async def aclose(self) -> None:
            Recording.closed = True

    gemini = GeminiProvider(settings(), KEY, http_transport=Recording(status(200)))
    await gemini.aclose()

    assert Recording.closed


def test_an_httpx_transport_is_refused_for_the_sdk_transport() -> None:
    with pytest.raises(ValueError, match="rest transport"):
        GeminiProvider(
            settings(transport="sdk"), KEY, http_transport=httpx.MockTransport(status(200))
        )


@pytest.mark.asyncio
async def test_no_answer_body_outlives_its_request() -> None:
    # httpx's Response and its stream refer to each other: a body kept on the response
    # waits for the cyclic collector (at 3072 dimensions 40 answers, 176 MB, mid-round).
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.dumps({"embeddings": [{"values": v} for v in vectors_for(request)]})

        async def streamed() -> Any:
            yield body.encode()

        return httpx.Response(200, content=streamed())

    gemini = provider(handler)
    gc.collect()
    gc.disable()  # what is left is what only the collector would free
    try:
        vectors = await gemini.embed(["apple", "pear"])
        holding = [
            response
            for response in gc.get_objects()
            if isinstance(response, httpx.Response) and hasattr(response, "_content")
        ]
    finally:
        gc.enable()
        await gemini.aclose()

    assert vectors.shape == (2, DIMENSION)
    assert holding == []


def test_the_transport_imports_the_network_backend_before_the_first_request() -> None:
    # In a fresh interpreter: this one has long imported it. Lazily imported, it held up
    # the first wave of a run by 30 to 65 ms of the event loop's time.
    probe = (
        "import sys\n"
        "from asyncpipe.embeddings.providers.gemini import GeminiProvider\n"
        "from asyncpipe.settings.sections import Gemini\n"
        "before = 'anyio._backends._asyncio' in sys.modules\n"
        "GeminiProvider(Gemini(base_url='http://127.0.0.1:9'), 'key')\n"
        "print(before, 'anyio._backends._asyncio' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["False", "True"]


@pytest.mark.asyncio
async def test_requests_are_read_on_the_request_thread_and_aclose_ends_it() -> None:
    # Reading a 4.3 MB answer through httpx is some 17 ms of Python work: on the run's
    # own loop it was most of that loop's lag at 3072 dimensions.
    readers: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        readers.append(threading.current_thread().name)
        return httpx.Response(
            200, json={"embeddings": [{"values": v} for v in vectors_for(request)]}
        )

    gemini = provider(handler)
    try:
        await gemini.embed(["apple"])
        await gemini.embed(["pear"])
    finally:
        await gemini.aclose()

    assert readers == ["asyncpipe-requests", "asyncpipe-requests"]
    assert not [t for t in threading.enumerate() if t.name == "asyncpipe-requests"]
