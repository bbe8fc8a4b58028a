"""generate_content: text written by the fast model (HF_MODEL_FAST), as in the seed."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent_core.llm import LLMClient
from agent_core.models import RiskLevel
from agent_core.tools.registry import Tool, ToolContext


class GenerateArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=20_000, description="what to write")
    max_tokens: int = Field(default=512, ge=1, le=4096)


def content_tools(llm: LLMClient) -> list[Tool]:
    def generate_content(args: GenerateArgs, context: ToolContext) -> dict[str, Any]:
        reply = llm.complete(
            [{"role": "user", "content": args.prompt}],
            timeout_s=max(0.1, context.remaining()),
            max_tokens=args.max_tokens,
        )
        return {"content": reply.content, "model": reply.model}

    return [
        Tool(
            name="generate_content",
            description="Write text (an email draft, a summary, a post) from a prompt.",
            risk=RiskLevel.MEDIUM,
            side_effects=False,
            args_model=GenerateArgs,
            handler=generate_content,
            timeout_s=60.0,
        )
    ]
