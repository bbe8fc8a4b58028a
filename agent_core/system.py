"""Is the runtime set up to work? One check per part (LLM, database, email, WhatsApp,
workers, tools), each a sentence with what to set, and the small live tests the System page
offers (one tiny LLM call, one test message per channel). Secrets are never in a sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_core.config import Settings, redact_url
from agent_core.demo import DEMO_MODEL, DEMO_OUTBOX
from agent_core.errors import AgentRuntimeError, ConfigError
from agent_core.llm import LLMError, asks_server_for_model, planning_model
from agent_core.notify import NotificationError
from agent_core.runs import live_workers
from agent_core.runtime import Runtime, transports

DEMO_EMAIL = "admin@example.com"  # the demo's recipients when none is set
DEMO_PHONE = "whatsapp:+10000000000"


@dataclass(frozen=True)
class Check:
    area: str
    ok: bool
    sentence: str


def checks(runtime: Runtime) -> list[Check]:
    """Every part's state, as read from the settings and the database (no message sent)."""
    settings, store = runtime.settings, runtime.store
    found = [
        _llm(runtime),
        Check(
            "Database",
            True,
            f"{store.dialect} at {redact_url(settings.database_url)}, schema revision "
            f"{store.schema_revision()}.",
        ),
        _email(settings),
        _whatsapp(settings),
    ]
    workers = live_workers(store, settings)
    if workers:
        found.append(
            Check(
                "Worker",
                True,
                f"{len(workers)} worker(s) alive; last heartbeat "
                f"{max(w.heartbeat_at for w in workers):%Y-%m-%d %H:%M:%S UTC}.",
            )
        )
    else:
        found.append(
            Check(
                "Worker",
                False,
                "No worker is alive: queued runs wait. Start one with "
                "`.venv/bin/python -m agent_core up` or `python scheduler.py`.",
            )
        )
    if not settings.agent_enabled:
        found.append(Check("Runs", False, "AGENT_ENABLED is false: no run starts. Set it to true."))
    if runtime.tools.problems:
        found += [Check("Tools", False, problem) for problem in runtime.tools.problems]
    found.append(_tools_ready(runtime))
    return found


def _tools_ready(runtime: Runtime) -> Check:
    """How many tools can run as configured, and what the others need (tools sharing a
    need are named together). In demo mode the scripted model needs none of their settings."""
    if runtime.settings.agent_demo:
        return Check("Tools", True, f"{len(runtime.tools)} tools available (demo mode).")
    needs: dict[str, list[str]] = {}
    for tool in runtime.tools:
        problem = tool.problem()
        if problem:
            needs.setdefault(problem, []).append(tool.name)
    total = len(runtime.tools)
    if not needs:
        return Check("Tools", True, f"All {total} tools can run as configured.")
    ready = total - sum(len(names) for names in needs.values())
    missing = " ".join(
        f"{', '.join(names)}: {problem.rstrip('.')}." for problem, names in needs.items()
    )
    return Check("Tools", False, f"{ready} of {total} tools can run as configured. {missing}")


def _llm(runtime: Runtime) -> Check:
    settings = runtime.settings
    if settings.agent_demo:
        return Check(
            "Language model",
            True,
            f"{DEMO_MODEL}: demo mode, the agent's steps are scripted and no LLM is called.",
        )
    if runtime.llm is None:
        return Check("Language model", False, f"Not configured: {runtime.llm_problem}.")
    where = (
        f"the server at {redact_url(settings.agent_llm_base_url)}"
        if settings.agent_llm_base_url
        else "Hugging Face Inference Providers"
    )
    fallbacks = settings.agent_llm_fallback_models
    more = f", falling back to {', '.join(fallbacks)}" if fallbacks else ""
    try:
        model = planning_model(settings)  # without a named model: the server's, asked once
    except ConfigError as exc:
        return Check("Language model", False, f"{exc}.")
    served = " (the model the server serves: AGENT_AI_MODEL is not set)"
    model += served if asks_server_for_model(settings) else ""
    return Check("Language model", True, f"{model} through {where}{more}.")


def _demo_outbox(area: str) -> Check:
    return Check(
        area,
        True,
        f"Demo mode: messages are written to the local outbox {DEMO_OUTBOX}, never delivered.",
    )


def _email(settings: Settings) -> Check:
    if settings.agent_demo:
        return _demo_outbox("Email")
    if not settings.smtp_host:
        return Check("Email", False, "Not configured: set SMTP_HOST, SMTP_FROM and ADMIN_EMAIL.")
    if not settings.admin_email:
        return Check("Email", False, "No recipient for approval emails: set ADMIN_EMAIL.")
    return Check(
        "Email",
        True,
        f"Approval emails go to {settings.admin_email} through "
        f"{settings.smtp_host}:{settings.smtp_port} ({settings.smtp_security}).",
    )


def _whatsapp(settings: Settings) -> Check:
    if settings.agent_demo:
        return _demo_outbox("WhatsApp")
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        return Check(
            "WhatsApp",
            False,
            "Not configured: set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, "
            "TWILIO_WHATSAPP_FROM and ADMIN_PHONE.",
        )
    if not settings.admin_phone:
        return Check("WhatsApp", False, "No recipient for approval messages: set ADMIN_PHONE.")
    return Check("WhatsApp", True, f"Approval messages go to {settings.admin_phone}.")


def test_llm(runtime: Runtime) -> Check:
    """One tiny call to the configured model."""
    if runtime.llm is None:
        return Check("Language model", False, f"Not configured: {runtime.llm_problem}.")
    try:
        reply = runtime.llm.complete(
            [{"role": "user", "content": "Reply with the single word OK."}],
            timeout_s=min(runtime.settings.agent_llm_timeout_s, 30),
            max_tokens=5,
        )
    except (LLMError, AgentRuntimeError) as exc:
        return Check("Language model", False, f"The test call failed: {exc}.")
    return Check(
        "Language model",
        True,
        f"{reply.model} answered in {reply.latency_ms} ms: {reply.content.strip()[:60]!r}.",
    )


def test_email(settings: Settings) -> Check:
    """One test email: to the mail server, or to the demo's outbox in demo mode."""
    to = settings.admin_email or (DEMO_EMAIL if settings.agent_demo else None)
    if not to:
        return Check("Email", False, "No recipient: set ADMIN_EMAIL.")
    mail, _ = transports(settings)
    try:
        mail.send(
            to,
            "[Agent Runtime] Test message",
            "This is a test from the agent runtime's System page: approval emails reach you.",
        )
    except (NotificationError, OSError) as exc:  # OSError: the demo outbox's file
        return Check("Email", False, f"The test email was not sent: {exc}.")
    if settings.agent_demo:
        return Check("Email", True, f"Demo mode: a test email to {to} went to {DEMO_OUTBOX}.")
    return Check("Email", True, f"A test email was sent to {to}.")


def test_whatsapp(settings: Settings) -> Check:
    """One test message: through Twilio, or to the demo's outbox in demo mode."""
    to = settings.admin_phone or (DEMO_PHONE if settings.agent_demo else None)
    if not to:
        return Check("WhatsApp", False, "No recipient: set ADMIN_PHONE.")
    _, phone = transports(settings)
    try:
        phone.send(to, "[Agent Runtime] Test message: approval requests reach you on WhatsApp.")
    except (NotificationError, OSError) as exc:
        return Check("WhatsApp", False, f"The test message was not sent: {exc}.")
    if settings.agent_demo:
        return Check("WhatsApp", True, f"Demo mode: a test message to {to} went to {DEMO_OUTBOX}.")
    return Check("WhatsApp", True, f"A test message was sent to {to}.")
