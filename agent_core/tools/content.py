"""generate_content: text written by the fast model (HF_MODEL_FAST), as in the seed. Without
an LLM the tool is still listed, and says what to set."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent_core.llm import NO_LLM_CONFIGURED, LLMClient
from agent_core.models import RiskLevel
from agent_core.tools.registry import Tool, ToolContext, ToolError


class GenerateArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=20_000, description="what to write")
    max_tokens: int = Field(default=512, ge=1, le=4096)


def content_tools(llm: LLMClient | None) -> list[Tool]:
    """generate_content on `llm`; with None (no LLM configured) its calls fail saying so."""

    def generate_content(args: GenerateArgs, context: ToolContext) -> dict[str, Any]:
        if llm is None:
            raise ToolError(NO_LLM_CONFIGURED)
        reply = llm.complete(
            [{"role": "user", "content": args.prompt}],
            timeout_s=max(0.1, context.remaining()),
            max_tokens=args.max_tokens,
        )
        context.spent_tokens(reply.prompt_tokens, reply.completion_tokens)
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
            readiness=lambda: NO_LLM_CONFIGURED if llm is None else None,
        )
    ]
