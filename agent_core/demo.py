"""The demo (`python -m agent_core up --demo`): a newcomer without an LLM sees the whole
journey on example data. A run pauses for approval, is approved in the inbox, and finishes.

- `DemoLLM` is a scripted model: it reads the conversation (the objective and the
  observations so far) and answers the next step as a real model would, deterministically.
- `DemoOutbox` stands in for the mail server and Twilio: messages are written to a local
  file (demo_outbox.jsonl), never delivered.
- `seed_demo` creates the example `app_leads` table and two objectives, once.

Every page of the dashboard says it is in demo mode (AGENT_DEMO=true).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from agent_core.llm import LLMReply, Message, estimate_tokens
from agent_core.models import ObjectiveSpec
from agent_core.store import Store

DEMO_MODEL = "demo-model (scripted)"
DEMO_DATABASE_URL = "sqlite:///agent_demo.db"
DEMO_OUTBOX = Path("demo_outbox.jsonl")
FOLLOW_UP_TITLE = "Follow up last week's leads"
COUNT_TITLE = "Count this week's new leads"
_OBSERVATION = re.compile(r"<observation>\n(.*)\n</observation>", re.DOTALL)


@dataclass
class DemoOutbox:
    """Messages the demo "sends": appended to a local JSON-lines file, never delivered."""

    path: Path = DEMO_OUTBOX
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, to: str, subject_or_body: str, body: str | None = None) -> str:
        record = {"to": to, "text": subject_or_body, "body": body, "at": datetime.now(UTC)}
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")
        return "demo-not-sent"

    def problem(self) -> str | None:
        return None  # the demo's outbox is always ready


def _step(thought: str, tool: str | None = None, done: bool = False, **args: Any) -> str:
    return json.dumps(
        {
            "thought": thought,
            "tool": tool,
            "args": args or None,
            "done": done,
            "summary": thought if done else None,
        }
    )


def _observations(messages: Sequence[Message]) -> list[Any]:
    found = []
    for message in messages:
        if message["role"] != "user":
            continue
        match = _OBSERVATION.search(message["content"])
        if match:
            try:
                found.append(json.loads(match.group(1)))
            except json.JSONDecodeError:
                found.append(match.group(1))
    return found


def _follow_up(observations: list[Any]) -> str:
    if not observations:
        return _step(
            "First I look for last week's leads that nobody has followed up yet.",
            "read_database",
            table="app_leads",
            filters={"followed_up": False},
            limit=5,
        )
    rows = observations[0].get("rows", []) if isinstance(observations[0], dict) else []
    lead = next((row for row in rows if row.get("email")), None)
    if lead is None:
        return _step("Every lead has been followed up: there is nothing to send.", done=True)
    if len(observations) == 1:
        return _step(
            f"{lead['name']} has not been contacted yet: I send a short follow-up email.",
            "send_email",
            to=lead["email"],
            subject="Following up on your request",
            body=f"Hello {lead['name']},\n\nThank you for your interest. Would you like a "
            "call this week to talk about your project?\n\nBest regards",
        )
    sent = observations[1]
    if isinstance(sent, dict) and sent.get("sent"):
        if len(observations) == 2:
            return _step(
                f"The email reached {lead['email']}: I mark the lead as followed up.",
                "update_data",
                table="app_leads",
                id=lead["id"],
                data={"followed_up": True},
            )
        return _step(f"Followed up {lead['name']} by email and marked the lead as done.", done=True)
    return _step(
        f"The email to {lead['email']} was not sent (the admin rejected it or it failed): "
        "no lead was contacted this time.",
        done=True,
    )


def _count(observations: list[Any]) -> str:
    if not observations:
        return _step(
            "I count the leads created in the last seven days.",
            "count_database",
            table="app_leads",
            filters={"created_at": {"gte": (datetime.now(UTC) - timedelta(days=7)).isoformat()}},
        )
    count = observations[0].get("count") if isinstance(observations[0], dict) else None
    if not isinstance(count, int):  # the count failed: say so rather than "None new leads"
        return _step("The leads could not be counted: see the failed step.", done=True)
    return _step(f"{count} new leads arrived in the last seven days.", done=True)


@dataclass
class DemoLLM:
    """A scripted model for the demo: the next step follows from the objective and what
    the agent has observed, like a real model's would."""

    model: str = DEMO_MODEL

    def complete(
        self,
        messages: Sequence[Message],
        *,
        timeout_s: float,
        response_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> LLMReply:
        objective = messages[1]["content"] if len(messages) > 1 else ""
        observations = _observations(messages)
        if FOLLOW_UP_TITLE in objective:
            content = _follow_up(observations)
        elif COUNT_TITLE in objective:
            content = _count(observations)
        elif len(messages) <= 2:
            content = _step("Demo model: I only know the demo objectives.", done=True)
        else:
            content = _step("Demo model: done.", done=True)
        prompt = sum(estimate_tokens(message["content"]) for message in messages)
        return LLMReply(
            content=content,
            model=self.model,
            prompt_tokens=prompt,
            completion_tokens=estimate_tokens(content),
            latency_ms=5,
        )


LEADS = [
    ("Ana Lopez", "ana.lopez@example.com", 82, False, 2),
    ("Ben Carter", "ben.carter@example.com", 64, False, 4),
    ("Chloé Martin", "chloe.martin@example.com", 91, True, 5),
    ("Dev Patel", "dev.patel@example.com", 47, False, 6),
    ("Emma Rossi", "emma.rossi@example.com", 73, True, 12),
]


def seed_demo(store: Store) -> list[str]:
    """The example table and objectives, created once; returns what was created."""
    created = []
    inspector = sa.inspect(store.engine)
    if "app_leads" not in inspector.get_table_names():
        leads = sa.Table(
            "app_leads",
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(100), nullable=False),
            sa.Column("email", sa.String(200)),
            sa.Column("score", sa.Integer),
            sa.Column("followed_up", sa.Boolean, nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        )
        now = datetime.now(UTC)
        with store.engine.begin() as conn:
            leads.create(conn)
            conn.execute(
                leads.insert(),
                [
                    {
                        "name": name,
                        "email": email,
                        "score": score,
                        "followed_up": done,
                        "created_at": now - timedelta(days=days),
                    }
                    for name, email, score, done, days in LEADS
                ],
            )
        created.append("table app_leads")
    titles = {objective.title for objective in store.list_objectives()}
    for spec in (
        ObjectiveSpec(
            title=FOLLOW_UP_TITLE,
            description="Find last week's leads without a follow-up, email one of them, and "
            "mark it as followed up.",
            tools_allowed=["read_database", "send_email", "update_data"],
            risk_level="medium",
        ),
        ObjectiveSpec(
            title=COUNT_TITLE,
            description="Count the leads created in the last seven days.",
            tools_allowed=["count_database"],
            risk_level="low",
            schedule="0 9 * * 1",
            timezone="Europe/Paris",
        ),
    ):
        if spec.title not in titles:
            store.create_objective(spec)
            created.append(f"objective {spec.title!r}")
    return created
