"""The local fake of the Anthropic API, exercised through the real anthropic SDK."""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor

import anthropic
import pytest

from audience_assets_tests.fakes.anthropic_server import (
    FakeAnthropic,
    batch_error,
    batch_expired,
    delay_reply,
    error_reply,
    json_reply,
    refusal_reply,
    text_reply,
    tool_reply,
)

MODEL = "claude-test-model"
KEY = "test-key"
SCHEMA = {
    "type": "object",
    "properties": {"audience_ref": {"type": "string"}, "reason": {"type": "string"}},
    "required": ["audience_ref", "reason"],
    "additionalProperties": False,
}


@pytest.fixture
def fake():
    with FakeAnthropic() as server:
        yield server


def client(fake: FakeAnthropic, *, max_retries: int = 0, timeout: float = 5.0) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=KEY, base_url=fake.base_url, max_retries=max_retries, timeout=timeout)


def params(text: str = "hello", **extra):
    return {"model": MODEL, "max_tokens": 256, "messages": [{"role": "user", "content": text}], **extra}


def test_text_reply_parses_to_a_message(fake):
    fake.queue(text_reply("Hi there, audience!"))
    message = client(fake).messages.create(**params())

    assert isinstance(message, anthropic.types.Message)
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.model == MODEL
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Hi there, audience!"

    (req,) = fake.requests
    assert message._request_id == req["request_id"] and message._request_id.startswith("req_")
    assert req["method"] == "POST" and req["path"] == "/v1/messages" and req["status"] == 200
    assert req["json"]["messages"] == [{"role": "user", "content": "hello"}]
    body_len = int(req["headers"]["content-length"])
    assert message.usage.input_tokens == body_len // 4
    assert message.usage.output_tokens == math.ceil(len("Hi there, audience!") / 4)
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_read_input_tokens == 0
    # SDK 2.14 sends the key as a Bearer token; the fake records whichever header carried it.
    assert fake.api_keys == [KEY]
    assert fake.pending == 0


def test_usage_override_and_plain_replies(fake):
    fake.queue(
        text_reply("x", usage={"input_tokens": 1234, "output_tokens": 56}),
        "a plain string",
        {"content": [{"type": "text", "text": "from a dict"}], "stop_reason": "stop_sequence", "stop_sequence": "END"},
    )
    c = client(fake)
    first = c.messages.create(**params())
    assert (first.usage.input_tokens, first.usage.output_tokens) == (1234, 56)
    assert c.messages.create(**params()).content[0].text == "a plain string"
    third = c.messages.create(**params())
    assert third.stop_reason == "stop_sequence" and third.stop_sequence == "END"
    assert third.content[0].text == "from a dict"


def test_tool_reply(fake):
    fake.queue(tool_reply("record_explanation", {"audience_ref": "aud_1", "score": 0.5}, text="Calling the tool."))
    tools = [{"name": "record_explanation", "description": "d", "input_schema": {"type": "object"}}]
    message = client(fake).messages.create(**params(tools=tools))

    assert message.stop_reason == "tool_use"
    text, tool = message.content
    assert text.type == "text" and text.text == "Calling the tool."
    assert isinstance(tool, anthropic.types.ToolUseBlock)
    assert tool.name == "record_explanation"
    assert tool.input == {"audience_ref": "aud_1", "score": 0.5}
    assert tool.id.startswith("toolu_")
    assert fake.requests[0]["json"]["tools"] == tools


def test_native_structured_output_gets_the_queued_json(fake):
    doc = {"audience_ref": "aud_7", "reason": "CPA fell 20% over 14 days"}
    fake.queue(json_reply(doc))
    message = client(fake).messages.create(
        **params(output_config={"format": {"type": "json_schema", "schema": SCHEMA}})
    )

    assert json.loads(message.content[0].text) == doc
    sent = fake.message_requests[0]
    assert sent["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}}


def test_responder_answers_from_the_request():
    def responder(request):
        payload = json.loads(request["messages"][0]["content"][0]["text"])
        return json_reply([{"audience_ref": ref, "reason": "echo"} for ref in payload["refs"]])

    with FakeAnthropic(responder) as fake:
        c = client(fake)
        for refs in (["a1", "a2"], ["b9"]):
            content = [{"type": "text", "text": json.dumps({"refs": refs})}]
            message = c.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": content}])
            assert [d["audience_ref"] for d in json.loads(message.content[0].text)] == refs


def test_queue_takes_precedence_over_responder():
    with FakeAnthropic(lambda request: text_reply("from responder")) as fake:
        fake.queue(text_reply("from queue"))
        c = client(fake)
        assert c.messages.create(**params()).content[0].text == "from queue"
        assert c.messages.create(**params()).content[0].text == "from responder"


def test_empty_queue_is_a_500_api_error(fake):
    with pytest.raises(anthropic.InternalServerError) as info:
        client(fake).messages.create(**params())
    assert info.value.status_code == 500
    assert info.value.body["error"] == {"type": "api_error", "message": "no reply queued"}
    assert info.value.request_id == fake.requests[0]["request_id"]


def test_responder_exception_is_a_500_and_recorded():
    def broken(request):
        raise RuntimeError("boom")

    with FakeAnthropic(broken) as fake:
        with pytest.raises(anthropic.InternalServerError):
            client(fake).messages.create(**params())
        assert [type(e) for e in fake.errors] == [RuntimeError]


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(429, "rate_limit_error"), (529, "overloaded_error")],
)
def test_retryable_error_then_success_is_retried(fake, status, error_type):
    fake.queue(error_reply(status, error_type, "slow down", headers={"retry-after-ms": "5"}), text_reply("ok"))
    started = time.monotonic()
    message = client(fake, max_retries=2).messages.create(**params())

    assert message.content[0].text == "ok"
    assert time.monotonic() - started < 1.0
    assert [r["status"] for r in fake.requests] == [status, 200]
    assert [r["headers"]["x-stainless-retry-count"] for r in fake.requests] == ["0", "1"]
    assert fake.requests[0]["json"] == fake.requests[1]["json"]
    assert message._request_id == fake.requests[1]["request_id"]


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(429, anthropic.RateLimitError), (529, anthropic.OverloadedError)],
)
def test_retryable_error_beyond_max_retries_raises(fake, status, error_class):
    fake.queue(*[error_reply(status) for _ in range(3)])  # default headers: retry-after-ms 5
    with pytest.raises(error_class) as info:
        client(fake, max_retries=2).messages.create(**params())

    err = info.value
    assert err.status_code == status
    assert err.type == ("rate_limit_error" if status == 429 else "overloaded_error")
    assert err.request_id == fake.requests[-1]["request_id"]
    assert len(fake.requests) == 3
    if status == 529:  # the SDK's 529 class is an InternalServerError subclass
        assert isinstance(err, anthropic.InternalServerError)


def test_non_retryable_400_is_not_retried(fake):
    fake.queue(error_reply(400, message="bad schema"), text_reply("never sent"))
    with pytest.raises(anthropic.BadRequestError) as info:
        client(fake, max_retries=2).messages.create(**params())
    assert info.value.body["error"] == {"type": "invalid_request_error", "message": "bad schema"}
    assert len(fake.requests) == 1 and fake.pending == 1


def test_delay_beyond_client_timeout_raises_api_timeout_error(fake):
    fake.queue(delay_reply(1.0, text_reply("too late")))
    started = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        client(fake, timeout=0.2).messages.create(**params())
    assert time.monotonic() - started < 0.9
    assert len(fake.requests) == 1


def test_delay_within_timeout_answers(fake):
    fake.queue(delay_reply(0.05, text_reply("worth the wait")))
    assert client(fake, timeout=2).messages.create(**params()).content[0].text == "worth the wait"


def test_prompt_caching_usage(fake):
    system = [{"type": "text", "text": "You explain audience decisions. " * 20, "cache_control": {"type": "ephemeral"}}]
    other = [{"type": "text", "text": "A different static prompt. " * 20, "cache_control": {"type": "ephemeral"}}]
    fake.queue(*[text_reply("ok") for _ in range(4)])
    c = client(fake)

    first = c.messages.create(**params("batch one", system=system)).usage
    second = c.messages.create(**params("batch two", system=system)).usage
    third = c.messages.create(**params("batch one", system=other)).usage
    uncached = c.messages.create(**params("batch one", system="no cache marker")).usage

    cached = len(system[0]["text"]) // 4
    assert (first.cache_creation_input_tokens, first.cache_read_input_tokens) == (cached, 0)
    assert first.cache_creation.ephemeral_5m_input_tokens == cached
    assert (second.cache_creation_input_tokens, second.cache_read_input_tokens) == (0, cached)
    assert third.cache_creation_input_tokens > 0 and third.cache_read_input_tokens == 0
    assert (uncached.cache_creation_input_tokens, uncached.cache_read_input_tokens) == (0, 0)
    assert 0 < second.input_tokens < int(fake.requests[1]["headers"]["content-length"]) // 4


@pytest.mark.parametrize("stop_reason", ["end_turn", "max_tokens", "refusal", "tool_use"])
def test_stop_reasons(fake, stop_reason):
    reply = {
        "end_turn": text_reply("done"),
        "max_tokens": text_reply('{"audience_ref": "a', stop_reason="max_tokens"),
        "refusal": refusal_reply(category="general_harms"),
        "tool_use": tool_reply("t", {}),
    }[stop_reason]
    fake.queue(reply)
    message = client(fake).messages.create(**params())
    assert message.stop_reason == stop_reason
    if stop_reason == "max_tokens":
        assert message.usage.output_tokens == 256
    if stop_reason == "refusal":
        assert message.content == []
        assert message.stop_details.type == "refusal" and message.stop_details.category == "general_harms"


def test_missing_api_key_is_401(fake):
    fake.queue(text_reply("never sent"))
    with pytest.raises(anthropic.AuthenticationError) as info:
        client(fake, max_retries=2).messages.create(**params(), extra_headers={"Authorization": anthropic.omit})
    assert info.value.status_code == 401
    assert info.value.body["error"]["type"] == "authentication_error"
    (req,) = fake.requests
    assert "authorization" not in req["headers"] and "x-api-key" not in req["headers"]
    assert fake.api_keys == [None] and fake.pending == 1


def test_x_api_key_header_is_accepted_too(fake):
    fake.queue(text_reply("ok"))
    c = anthropic.Anthropic(
        api_key=KEY,
        base_url=fake.base_url,
        max_retries=0,
        default_headers={"Authorization": anthropic.omit, "x-api-key": "other-key"},
    )
    assert c.messages.create(**params()).content[0].text == "ok"
    assert fake.api_keys == ["other-key"]


def test_invalid_request_is_400_without_consuming_a_reply(fake):
    fake.queue(text_reply("kept"))
    with pytest.raises(anthropic.BadRequestError):
        client(fake).messages.create(model=MODEL, max_tokens=5, messages=[], extra_body={"model": None})
    assert fake.pending == 1


def test_count_tokens(fake):
    result = client(fake).messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert result.input_tokens >= 1
    assert fake.pending == 0


def test_concurrent_requests_are_served_in_parallel():
    with FakeAnthropic(lambda request: delay_reply(0.2, text_reply(request["messages"][0]["content"]))) as fake:
        c = client(fake)
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            texts = list(pool.map(lambda i: c.messages.create(**params(f"n{i}")).content[0].text, range(4)))
        assert texts == ["n0", "n1", "n2", "n3"]
        assert time.monotonic() - started < 0.7


def batch_requests(*ids: str):
    return [{"custom_id": cid, "params": params(f"request {cid}")} for cid in ids]


def test_batch_flow(fake):
    c = client(fake)
    batch = c.messages.batches.create(requests=batch_requests("aud_a", "aud_b", "aud_c", "aud_d"))
    assert isinstance(batch, anthropic.types.messages.MessageBatch)
    assert batch.id.startswith("msgbatch_") and batch.type == "message_batch"
    assert batch.processing_status == "in_progress" and batch.results_url is None
    assert batch.request_counts.processing == 4 and batch.request_counts.succeeded == 0
    assert batch.expires_at > batch.created_at and batch.ended_at is None

    polled = c.messages.batches.retrieve(batch.id)
    assert polled.processing_status == "in_progress"

    fake.queue(
        json_reply({"audience_ref": "aud_a"}),
        batch_error("invalid_request_error", "bad params"),
        json_reply({"audience_ref": "aud_c"}),
        batch_expired(),
    )
    ended = c.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.ended_at is not None
    assert ended.results_url == f"{fake.base_url}/v1/messages/batches/{batch.id}/results"
    counts = ended.request_counts
    assert (counts.processing, counts.succeeded, counts.errored, counts.expired) == (0, 2, 1, 1)

    results = {entry.custom_id: entry.result for entry in c.messages.batches.results(batch.id)}
    assert set(results) == {"aud_a", "aud_b", "aud_c", "aud_d"}
    assert results["aud_a"].type == "succeeded"
    assert isinstance(results["aud_a"].message, anthropic.types.Message)
    assert json.loads(results["aud_a"].message.content[0].text) == {"audience_ref": "aud_a"}
    assert results["aud_a"].message.model == MODEL
    assert results["aud_a"].message.usage.service_tier == "batch"
    assert results["aud_b"].type == "errored"
    assert results["aud_b"].error.error.type == "invalid_request_error"
    assert results["aud_b"].error.error.message == "bad params"
    assert results["aud_c"].type == "succeeded"
    assert results["aud_d"].type == "expired"

    # results() retrieves the batch again, then GETs the absolute results_url as application/binary.
    paths = [(r["method"], r["path"]) for r in fake.requests]
    assert paths == [
        ("POST", "/v1/messages/batches"),
        ("GET", f"/v1/messages/batches/{batch.id}"),
        ("GET", f"/v1/messages/batches/{batch.id}"),
        ("GET", f"/v1/messages/batches/{batch.id}"),
        ("GET", f"/v1/messages/batches/{batch.id}/results"),
    ]
    assert fake.requests[-1]["headers"]["accept"] == "application/binary"
    assert fake.requests[0]["json"]["requests"][1]["custom_id"] == "aud_b"
    assert fake.api_keys == [KEY] * 5


def test_batch_results_come_from_the_responder_with_each_requests_params():
    seen = []

    def responder(request):
        seen.append(request["messages"][0]["content"])
        return text_reply("answer to " + request["messages"][0]["content"])

    with FakeAnthropic(responder, poll_rounds=0) as fake:
        c = client(fake)
        batch = c.messages.batches.create(requests=batch_requests("x", "y"))
        assert c.messages.batches.retrieve(batch.id).processing_status == "ended"
        texts = {e.custom_id: e.result.message.content[0].text for e in c.messages.batches.results(batch.id)}
    assert texts == {"x": "answer to request x", "y": "answer to request y"}
    assert seen == ["request x", "request y"]


def test_batch_without_replies_errors_each_request(fake):
    c = client(fake)
    batch = c.messages.batches.create(requests=batch_requests("only"))
    c.messages.batches.retrieve(batch.id)
    assert c.messages.batches.retrieve(batch.id).request_counts.errored == 1
    (entry,) = list(c.messages.batches.results(batch.id))
    assert entry.result.type == "errored" and entry.result.error.error.message == "no reply queued"


def test_batch_cancel_and_poll_rounds():
    with FakeAnthropic(poll_rounds=3) as fake:
        c = client(fake)
        batch = c.messages.batches.create(requests=batch_requests("p", "q"))
        statuses = [c.messages.batches.retrieve(batch.id).processing_status for _ in range(3)]
        assert statuses == ["in_progress"] * 3
        canceling = c.messages.batches.cancel(batch.id)
        assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
        ended = c.messages.batches.retrieve(batch.id)
        assert ended.processing_status == "ended" and ended.request_counts.canceled == 2
        assert [e.result.type for e in c.messages.batches.results(batch.id)] == ["canceled", "canceled"]
        assert [b.id for b in c.messages.batches.list()] == [batch.id]


def test_results_before_the_batch_ends_raise(fake):
    c = client(fake)
    batch = c.messages.batches.create(requests=batch_requests("r"))
    with pytest.raises(anthropic.AnthropicError, match="No `results_url`"):
        c.messages.batches.results(batch.id)  # its internal retrieve is poll 1: still in progress


def test_unknown_batch_is_404(fake):
    with pytest.raises(anthropic.NotFoundError):
        client(fake).messages.batches.retrieve("msgbatch_missing")
