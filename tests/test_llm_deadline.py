"""One LLM call's wall-clock deadline, however the server sends its bytes, and the retries of
rate limits and overloads within it: the real client against the real local server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from agent_core.llm import InferenceLLM, LLMError, LLMTimeout, retry_after_s
from agent_core.models import RunStatus, StopReason
from tests.support import agent_settings, make_objective, make_orchestrator, run_to_end

ASK = [{"role": "user", "content": "How many leads came in this week?"}]
DONE = json.dumps({"thought": "t", "tool": None, "args": None, "done": True, "summary": "3 leads"})
# Under a minute for the whole reply at this pace, yet no single read ever waits long: a
# per-read timeout never trips.
TRICKLE_S = 0.2


def _threads() -> int:
    """Threads running, but a client's deadline thread (one per client, idle ones end)."""
    return sum(1 for thread in threading.enumerate() if thread.name != "llm-deadline")


def _timed(call):
    started = time.monotonic()
    try:
        return call(), time.monotonic() - started
    except LLMError as exc:
        return exc, time.monotonic() - started


# --- the deadline --------------------------------------------------------------------------------


@pytest.mark.parametrize("headers_first", [False, True], ids=["all-trickled", "slow-body"])
def test_a_trickling_server_is_cut_at_the_deadline_and_its_connection_closed(
    llm_server, headers_first
):
    llm_server.trickle(DONE, every_s=TRICKLE_S, headers_first=headers_first)
    llm = InferenceLLM(models=["slow"], base_url=llm_server.url, timeout_s=60)
    threads_before = _threads()

    outcome, elapsed = _timed(lambda: llm.complete(ASK, timeout_s=1.5))

    assert isinstance(outcome, LLMTimeout)
    assert "slow" in str(outcome)
    assert 1.5 <= elapsed < 2.5  # the deadline, plus at most a second
    # The server finds the connection closed at its next write: the call is over for good.
    waited = time.monotonic()
    while not llm_server.disconnects and time.monotonic() - waited < 2:
        time.sleep(0.05)
    assert llm_server.disconnects
    assert llm_server.disconnects[0] - (waited - elapsed) < 1.5 + 1
    # No thread left behind: the client's one deadline thread is not a thread per call.
    assert _threads() <= threads_before


def test_trickling_fallbacks_share_one_deadline(llm_server):
    llm_server.trickle(DONE, every_s=TRICKLE_S, model="slow-1")
    llm_server.trickle(DONE, every_s=TRICKLE_S, model="slow-2")
    llm = InferenceLLM(models=["slow-1", "slow-2"], base_url=llm_server.url, timeout_s=0.8)

    outcome, elapsed = _timed(lambda: llm.complete(ASK, timeout_s=1.2))

    assert isinstance(outcome, LLMTimeout)
    assert elapsed < 1.2 + 1
    assert [r["model"] for r in llm_server.requests] == ["slow-1", "slow-2"]


def test_when_every_model_times_out_the_call_is_a_timeout_even_before_the_deadline(llm_server):
    llm_server.hang(5, model="a")
    llm_server.hang(5, model="b")
    llm = InferenceLLM(models=["a", "b"], base_url=llm_server.url, timeout_s=0.4)

    outcome, elapsed = _timed(lambda: llm.complete(ASK, timeout_s=5))

    assert isinstance(outcome, LLMTimeout)
    assert elapsed < 1.5
    assert "a: timed out" in str(outcome)
    assert "b: timed out" in str(outcome)


def test_a_call_made_from_inside_a_running_event_loop_keeps_its_deadline(llm_server):
    llm_server.trickle(DONE, every_s=TRICKLE_S)
    llm_server.reply("quick")
    llm = InferenceLLM(models=["m"], base_url=llm_server.url)

    async def caller():
        first = _timed(lambda: llm.complete(ASK, timeout_s=1))
        return first, llm.complete(ASK, timeout_s=5)

    (outcome, elapsed), second = asyncio.run(caller())

    assert isinstance(outcome, LLMTimeout)
    assert elapsed < 2
    assert second.content == "quick"


def test_a_run_whose_llm_trickles_stops_with_llm_timeout_when_agent_llm_timeout_s_is_the_limit(
    store, llm_server
):
    objective = make_objective(store)
    llm_server.trickle(DONE, every_s=TRICKLE_S)
    orchestrator = make_orchestrator(
        store, llm_server.url, settings=agent_settings(agent_llm_timeout_s=1)
    )

    started = time.monotonic()
    run = run_to_end(orchestrator, objective.id)
    elapsed = time.monotonic() - started

    assert (run.status, run.stop_reason) == (RunStatus.FAILED, StopReason.LLM_TIMEOUT)
    assert "AGENT_LLM_TIMEOUT_S" in run.error
    assert elapsed < 1 + 1.5


def test_a_run_whose_llm_trickles_stops_with_budget_duration_when_the_budget_is_the_limit(
    store, llm_server
):
    objective = make_objective(store, budget={"maxDurationMs": 1200})
    llm_server.trickle(DONE, every_s=TRICKLE_S, headers_first=True)
    orchestrator = make_orchestrator(
        store, llm_server.url, settings=agent_settings(agent_llm_timeout_s=30)
    )

    started = time.monotonic()
    run = run_to_end(orchestrator, objective.id)
    elapsed = time.monotonic() - started

    assert (run.status, run.stop_reason) == (RunStatus.FAILED, StopReason.BUDGET_DURATION)
    assert "duration budget" in run.error
    assert elapsed < 1.2 + 1.5


# --- rate limits and overloads -------------------------------------------------------------------


def test_a_429_is_asked_again_on_the_same_model_after_its_retry_after(llm_server):
    llm_server.limit(429, retry_after="1", model="m1")
    llm_server.reply("answered", model="m1")
    llm = InferenceLLM(models=["m1", "m2"], base_url=llm_server.url)

    reply, elapsed = _timed(lambda: llm.complete(ASK, timeout_s=10))

    assert (reply.model, reply.content, reply.failures) == ("m1", "answered", ())
    assert 1 <= elapsed < 2
    assert [r["model"] for r in llm_server.requests] == ["m1", "m1"]


def test_a_retry_after_given_as_an_http_date_is_honoured(llm_server):
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    llm_server.limit(503, retry_after=format_datetime(when, usegmt=True), model="m1")
    llm_server.reply("answered", model="m1")
    llm = InferenceLLM(models=["m1"], base_url=llm_server.url)

    reply, elapsed = _timed(lambda: llm.complete(ASK, timeout_s=10))

    assert reply.content == "answered"
    assert datetime.now(UTC) >= when - timedelta(milliseconds=50)
    assert elapsed < 3


def test_an_overload_without_retry_after_is_retried_with_a_backoff(llm_server):
    llm_server.limit(503, model="m1")
    llm_server.limit(503, model="m1")
    llm_server.reply("answered", model="m1")
    llm = InferenceLLM(models=["m1"], base_url=llm_server.url)

    reply, elapsed = _timed(lambda: llm.complete(ASK, timeout_s=10))

    assert reply.content == "answered"
    assert 0.5 + 1 <= elapsed < 3  # 0.5 s, then 1 s (a little jitter on top)


def test_retries_are_capped_then_the_fallback_answers(llm_server):
    for _ in range(6):
        llm_server.limit(429, retry_after="0", model="m1")
    llm_server.reply("from the fallback", model="m2")
    llm = InferenceLLM(models=["m1", "m2"], base_url=llm_server.url)

    reply = llm.complete(ASK, timeout_s=10)

    assert (reply.model, reply.content) == ("m2", "from the fallback")
    assert len(llm_server.requests_for("m1")) == 1 + 4
    [failure] = reply.failures
    assert failure.startswith("m1: ")
    assert "429" in failure
    assert "4 retries" in failure


def test_a_retry_after_past_the_deadline_is_not_waited_for(llm_server):
    llm_server.limit(429, retry_after="120", model="m1")
    llm_server.reply("from the fallback", model="m2")
    llm = InferenceLLM(models=["m1", "m2"], base_url=llm_server.url)

    reply, elapsed = _timed(lambda: llm.complete(ASK, timeout_s=5))

    assert reply.model == "m2"
    assert elapsed < 0.5
    assert "past the deadline" in reply.failures[0]


def test_a_single_model_rate_limited_past_the_deadline_fails_as_llm_error_at_once(llm_server):
    llm_server.limit(429, retry_after="120")
    llm = InferenceLLM(models=["only"], base_url=llm_server.url)

    outcome, elapsed = _timed(lambda: llm.complete(ASK, timeout_s=5))

    assert type(outcome) is LLMError
    assert elapsed < 0.5
    assert "429" in str(outcome)


def test_a_single_429_no_longer_fails_a_run(store, llm_server):
    objective = make_objective(store)
    llm_server.limit(429, retry_after="0.2")
    llm_server.done("Three leads.")

    run = run_to_end(make_orchestrator(store, llm_server.url), objective.id)

    assert (run.status, run.stop_reason) == (RunStatus.COMPLETED, StopReason.DONE)
    assert run.summary == "Three leads."
    assert len(llm_server.requests) == 2


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        (" 1.5 ", 1.5),
        ("-4", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date past: at once
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_is_read_as_seconds_or_as_an_http_date(header, expected):
    assert retry_after_s(header) == expected


def test_a_retry_after_date_in_the_future_is_the_seconds_until_it():
    when = datetime.now(UTC) + timedelta(seconds=30)
    seconds = retry_after_s(format_datetime(when, usegmt=True))
    assert seconds is not None
    assert 28 <= seconds <= 30


def test_after_a_cut_the_threads_next_call_answers_on_a_new_connection(llm_server):
    """The cut connection is the thread's kept one: the thread drops it, and its next call
    (here on the same thread) opens another and gets its answer."""
    llm_server.trickle(DONE, every_s=TRICKLE_S)
    llm_server.reply("after the cut")
    llm = InferenceLLM(models=["m"], base_url=llm_server.url, timeout_s=60)

    with pytest.raises(LLMTimeout):
        llm.complete(ASK, timeout_s=0.6)
    reply = llm.complete(ASK, timeout_s=5)

    assert reply.content == "after the cut"
    first, second = llm_server.peer_ports
    assert first != second
