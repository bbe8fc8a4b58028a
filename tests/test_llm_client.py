"""The LLM client: the real huggingface_hub InferenceClient over HTTP, with its fallback chain."""

from __future__ import annotations

import asyncio
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from huggingface_hub import AsyncInferenceClient

from agent_core.config import load_settings
from agent_core.errors import ConfigError
from agent_core.llm import InferenceLLM, LLMError, LLMTimeout, ScriptedLLM, build_llm

REPO = Path(__file__).resolve().parent.parent
ASK = [
    {"role": "system", "content": "You plan one step at a time."},
    {"role": "user", "content": "How many leads came in this week?"},
]
SCHEMA = {
    "type": "object",
    "properties": {"thought": {"type": "string"}, "done": {"type": "boolean"}},
    "required": ["thought", "done"],
}


def _dead_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (the port was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _schema_sent(request: dict) -> dict | None:
    """The JSON schema a chat request carried in response_format, in either wire shape:
    OpenAI's {"type": "json_schema", "json_schema": {"schema": ...}} or TGI's
    {"type": "json_object", "value": ...}."""
    response_format = request.get("response_format")
    if not response_format:
        return None
    if "json_schema" in response_format:
        return response_format["json_schema"].get("schema")
    return response_format.get("value")


# --- one model -------------------------------------------------------------------------------


def test_a_reply_records_the_model_its_tokens_and_its_latency(llm_server):
    llm_server.reply(
        "Three leads.", model="m1", delay_s=0.2, prompt_tokens=321, completion_tokens=12
    )
    llm = InferenceLLM(models=["m1"], base_url=llm_server.url)

    reply = llm.complete(ASK, timeout_s=5)

    assert reply.content == "Three leads."
    assert reply.model == "m1"
    assert (reply.prompt_tokens, reply.completion_tokens) == (321, 12)
    assert 200 <= reply.latency_ms < 2000
    assert reply.failures == ()
    [request] = llm_server.requests
    assert request["model"] == "m1"
    assert request["messages"] == ASK


def test_the_configured_temperature_and_token_limit_reach_the_server(llm_server):
    llm_server.reply("ok").reply("ok")
    llm = InferenceLLM(models=["m1"], base_url=llm_server.url, temperature=0.7, max_tokens=300)

    llm.complete(ASK, timeout_s=5)
    llm.complete(ASK, timeout_s=5, max_tokens=50)

    assert [r["temperature"] for r in llm_server.requests] == [0.7, 0.7]
    assert [r["max_tokens"] for r in llm_server.requests] == [300, 50]


# --- the fallback chain ----------------------------------------------------------------------


def test_an_http_500_moves_on_to_the_next_model_and_says_why(llm_server):
    llm_server.fail(500, model="m1")
    llm_server.reply("From the fallback.", model="m2")
    llm = InferenceLLM(models=["m1", "m2"], base_url=llm_server.url)

    reply = llm.complete(ASK, timeout_s=5)

    assert reply.content == "From the fallback."
    assert reply.model == "m2"
    [failure] = reply.failures
    assert failure.startswith("m1: ")
    assert "500" in failure
    assert [r["model"] for r in llm_server.requests] == ["m1", "m2"]


def test_a_dead_endpoint_fails_quickly_with_the_models_name():
    llm = InferenceLLM(models=["org/dead-model"], base_url=_dead_url(), timeout_s=30)

    started = time.monotonic()
    with pytest.raises(LLMError) as caught:
        llm.complete(ASK, timeout_s=30)

    assert time.monotonic() - started < 2
    assert "org/dead-model" in str(caught.value)
    assert "refused" in str(caught.value).lower()


def test_a_model_that_hangs_past_its_timeout_gives_way_to_the_next(llm_server):
    llm_server.hang(5, model="slow")
    llm_server.reply("Quick answer.", model="fast")
    llm = InferenceLLM(models=["slow", "fast"], base_url=llm_server.url, timeout_s=0.5)

    started = time.monotonic()
    reply = llm.complete(ASK, timeout_s=2)
    elapsed = time.monotonic() - started

    assert reply.content == "Quick answer."
    assert reply.model == "fast"
    assert 0.5 <= elapsed < 2
    [failure] = reply.failures
    assert failure.startswith("slow: ")
    assert "timed out" in failure


def test_the_call_budget_caps_every_models_wait_and_raises_llm_timeout(llm_server):
    llm_server.hang(5, model="slow-1")
    llm_server.hang(5, model="slow-2")
    llm = InferenceLLM(models=["slow-1", "slow-2"], base_url=llm_server.url, timeout_s=60)

    started = time.monotonic()
    with pytest.raises(LLMTimeout) as caught:
        llm.complete(ASK, timeout_s=1)

    assert time.monotonic() - started < 1.5
    assert "slow-1" in str(caught.value)
    assert [r["model"] for r in llm_server.requests] == ["slow-1"]


def test_a_single_model_that_outlasts_the_call_budget_raises_llm_timeout(llm_server):
    # The call's deadline passed: the orchestrator stops the run as llm_timeout or
    # budget_duration (whichever limit the deadline was), any other LLMError as llm_error.
    llm_server.hang(5, model="only")
    llm = InferenceLLM(models=["only"], base_url=llm_server.url, timeout_s=60)

    started = time.monotonic()
    with pytest.raises(LLMTimeout) as caught:
        llm.complete(ASK, timeout_s=1)

    assert time.monotonic() - started < 1.5
    assert "only" in str(caught.value)


def test_when_every_model_fails_the_error_lists_each_failure_on_one_line(llm_server):
    llm_server.fail(500, model="m1")
    llm_server.fail(503, model="m2")
    llm_server.hang(5, model="m3")
    llm = InferenceLLM(models=["m1", "m2", "m3"], base_url=llm_server.url, timeout_s=0.5)

    with pytest.raises(LLMError) as caught:
        llm.complete(ASK, timeout_s=5)

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("no model answered: ")
    parts = message.removeprefix("no model answered: ").split("; ")
    assert [part.split(": ", 1)[0] for part in parts] == ["m1", "m2", "m3"]
    assert "500" in parts[0]
    assert "503" in parts[1]
    assert "timed out" in parts[2]
    assert not isinstance(caught.value, LLMTimeout)


def test_a_400_without_json_mode_is_not_repeated_and_falls_back(llm_server):
    llm_server.fail(400, model="m1")
    llm_server.reply("ok", model="m2")
    llm = InferenceLLM(models=["m1", "m2"], base_url=llm_server.url)

    reply = llm.complete(ASK, timeout_s=5)

    assert reply.model == "m2"
    assert len(llm_server.requests_for("m1")) == 1


# --- JSON mode -------------------------------------------------------------------------------


def test_a_response_schema_is_sent_as_response_format(llm_server):
    llm_server.reply('{"thought": "t", "done": true}')
    llm = InferenceLLM(models=["m1"], base_url=llm_server.url)

    reply = llm.complete(ASK, timeout_s=5, response_schema=SCHEMA)

    assert reply.content == '{"thought": "t", "done": true}'
    [request] = llm_server.requests
    assert _schema_sent(request) == SCHEMA


def test_without_a_schema_no_response_format_is_sent(llm_server):
    llm_server.reply("plain text")
    InferenceLLM(models=["m1"], base_url=llm_server.url).complete(ASK, timeout_s=5)

    assert "response_format" not in llm_server.requests[0]


def test_a_server_rejecting_json_mode_is_asked_again_without_it_and_never_with_it_again(
    llm_server,
):
    llm_server.reject_json_mode = True
    llm_server.reply('{"thought": "first", "done": false}', model="m1")
    llm_server.reply('{"thought": "second", "done": true}', model="m1")
    llm = InferenceLLM(models=["m1"], base_url=llm_server.url)

    first = llm.complete(ASK, timeout_s=5, response_schema=SCHEMA)
    second = llm.complete(ASK, timeout_s=5, response_schema=SCHEMA)

    assert first.content == '{"thought": "first", "done": false}'
    assert second.content == '{"thought": "second", "done": true}'
    assert first.model == second.model == "m1"
    assert first.failures == second.failures == ()
    sent = [_schema_sent(request) for request in llm_server.requests_for("m1")]
    assert sent == [SCHEMA, None, None]


def test_a_422_on_json_mode_is_also_retried_without_it(llm_server):
    llm_server.fail(422, model="m1")
    llm_server.reply("answered as text", model="m1")
    llm = InferenceLLM(models=["m1", "m2"], base_url=llm_server.url)

    reply = llm.complete(ASK, timeout_s=5, response_schema=SCHEMA)

    assert (reply.model, reply.content) == ("m1", "answered as text")
    assert [_schema_sent(r) for r in llm_server.requests] == [SCHEMA, None]


def test_json_mode_is_given_up_per_model_not_for_the_whole_chain(llm_server):
    llm_server.fail(400, model="m1")
    llm_server.reply("m1 as text", model="m1")
    llm_server.fail(500, model="m1")
    llm_server.reply('{"thought": "m2", "done": true}', model="m2")
    llm = InferenceLLM(models=["m1", "m2"], base_url=llm_server.url)

    llm.complete(ASK, timeout_s=5, response_schema=SCHEMA)
    reply = llm.complete(ASK, timeout_s=5, response_schema=SCHEMA)

    assert reply.model == "m2"
    assert [(r["model"], _schema_sent(r)) for r in llm_server.requests] == [
        ("m1", SCHEMA),
        ("m1", None),
        ("m1", None),
        ("m2", SCHEMA),
    ]


# --- configuration ---------------------------------------------------------------------------


def test_build_llm_without_a_token_or_a_base_url_names_both_variables():
    with pytest.raises(ConfigError) as caught:
        build_llm(load_settings())

    assert "HF_TOKEN" in str(caught.value)
    assert "AGENT_LLM_BASE_URL" in str(caught.value)


def test_build_llm_with_a_base_url_talks_to_that_server_with_the_configured_chain(
    llm_server, monkeypatch
):
    monkeypatch.setenv("AGENT_LLM_BASE_URL", llm_server.url)
    monkeypatch.setenv("AGENT_AI_MODEL", "primary")
    monkeypatch.setenv("AGENT_LLM_FALLBACK_MODELS", "backup-1, backup-2")
    monkeypatch.setenv("AGENT_AI_TEMPERATURE", "0.5")
    llm_server.fail(500, model="primary")
    llm_server.reply("from backup-1", model="backup-1")

    llm = build_llm(load_settings())
    reply = llm.complete(ASK, timeout_s=5)

    assert list(llm.models) == ["primary", "backup-1", "backup-2"]
    assert (reply.model, reply.content) == ("backup-1", "from backup-1")
    assert {r["temperature"] for r in llm_server.requests} == {0.5}


# --- the scripted client ---------------------------------------------------------------------


def test_scripted_llm_replays_its_script_then_says_it_has_no_more():
    llm = ScriptedLLM(["first", lambda messages: f"echo: {messages[-1]['content']}"])

    first = llm.complete(ASK, timeout_s=1)
    second = llm.complete([{"role": "user", "content": "ping"}], timeout_s=1)

    assert (first.content, first.model) == ("first", "scripted")
    assert second.content == "echo: ping"
    assert first.prompt_tokens > 0
    assert llm.calls == [ASK, [{"role": "user", "content": "ping"}]]
    with pytest.raises(LLMError, match="scripted: the script has no more replies"):
        llm.complete(ASK, timeout_s=1)


def test_a_thread_keeps_its_client_and_connection_from_one_call_to_the_next(llm_server):
    """A client (TLS context, event loop, connection) built per call cost a worker most of
    its CPU: each thread builds one and keeps it; another thread has its own."""
    for _ in range(3):
        llm_server.reply("ok")
    llm = InferenceLLM(models=["m1"], base_url=llm_server.url)

    llm.complete(ASK, timeout_s=5)
    llm.complete(ASK, timeout_s=5)
    other = threading.Thread(target=lambda: llm.complete(ASK, timeout_s=5))
    other.start()
    other.join()

    first, second, from_other = llm_server.peer_ports
    assert first == second
    assert from_other != first


@pytest.mark.parametrize("schema", [SCHEMA, None], ids=["json-mode", "plain"])
def test_the_request_is_the_one_huggingface_hubs_client_sends(llm_server, schema):
    """The request is prepared by huggingface_hub's provider helper, once, and posted on its
    session: on the wire, the same body as AsyncInferenceClient.chat_completion's."""
    llm_server.reply("ours").reply("again").reply("theirs")
    llm = InferenceLLM(models=["m1"], base_url=llm_server.url, temperature=0.3, max_tokens=77)

    llm.complete(ASK, timeout_s=5, response_schema=schema)
    llm.complete(ASK, timeout_s=5, response_schema=schema)  # the kept request, reused

    async def theirs() -> None:
        async with AsyncInferenceClient(base_url=llm_server.url) as client:
            await client.chat_completion(
                ASK,
                model="m1",
                temperature=0.3,
                max_tokens=77,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "agent_step", "schema": schema},
                }
                if schema
                else None,
            )

    asyncio.run(theirs())
    ours, again, reference = llm_server.requests
    assert ours == again == reference
    assert list(ours) == list(reference)  # the same key order too: the model first


def test_the_token_never_appears_in_a_repr_of_the_client_or_its_requests(llm_server):
    llm_server.reply('{"ok": true}', model="m1")
    llm = InferenceLLM(models=["m1"], base_url=llm_server.url, token="hf_secret_token_123")

    llm.complete(ASK, timeout_s=5)

    assert "hf_secret_token_123" not in repr(llm)
    assert all("hf_secret_token_123" not in repr(request) for request in llm._prepared.values())


def test_credentials_in_the_servers_address_never_reach_the_error_stored_and_shown(llm_server):
    """The server refuses, and its error page echoes the path and query it was asked for."""
    address = llm_server.url.replace("http://", "http://proxyuser:Pr0xyPassw0rd@")
    llm = InferenceLLM(models=["m1"], base_url=f"{address}?api_key=sk-live-SECRET123")

    with pytest.raises(LLMError) as failed:
        llm.complete(ASK, timeout_s=5)

    error = str(failed.value)
    assert error.startswith("no model answered: m1: ")
    assert "proxyuser:***@" in error
    assert "Pr0xyPassw0rd" not in error
    assert "sk-live-SECRET123" not in error


_FIRST_CALL = """
import sys
from agent_core.config import load_settings
from agent_core.llm import build_llm
llm = build_llm(load_settings(agent_llm_base_url=sys.argv[1], agent_ai_model="test-model"))
print(llm.complete([{"role": "user", "content": "hi"}], timeout_s=30).content)
"""


def _first_call(url: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A process's first LLM call, to `url`, in a fresh process with `env`."""
    return subprocess.run(
        [sys.executable, "-c", _FIRST_CALL, url],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_call_to_the_admin_s_llm_server_asks_nothing_of_the_hugging_face_hub(
    llm_server, tmp_path
):
    """huggingface_hub's telemetry would fetch a registry from the Hub at a process's first
    request (offline, waiting 5 s for the lookup to fail): the runtime turns it off unless
    the admin turns it on. The "Hub" here is a local server that counts what reaches it."""
    asked: list[str] = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"standardEnvVars": [], "harnesses": {}}')

        def log_message(self, *_args):
            pass

    hub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=hub.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    llm_server.done("Counted.").done("Counted.")  # one for each process
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("HF_HUB_DISABLE_TELEMETRY", "DO_NOT_TRACK", "HF_HUB_OFFLINE")
    }
    env |= {"HF_ENDPOINT": f"http://127.0.0.1:{hub.server_address[1]}", "HF_HOME": str(tmp_path)}
    try:
        done = _first_call(llm_server.url, env)
        assert done.returncode == 0, done.stderr
        assert '"done": true' in done.stdout
        assert asked == []
        # The admin's own choice stands: with telemetry on, the Hub is asked.
        on = _first_call(llm_server.url, env | {"HF_HUB_DISABLE_TELEMETRY": "0"})
        assert on.returncode == 0, on.stderr
        assert asked == ["/api/agent-harnesses"]
    finally:
        hub.shutdown()
