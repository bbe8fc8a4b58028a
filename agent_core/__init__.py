"""agent runtime: LLM agents that work through business objectives step by step, under
budgets, policy and human approval, with every action in a tamper-evident ledger."""

import os

__version__ = "0.1.0"

# huggingface_hub's telemetry asks the Hub, at a process's first request, for a registry of
# AI coding tools to name in its User-Agent: a runtime talking to its own LLM server would
# call huggingface.co unasked, and offline or behind a firewall every run thread's first LLM
# call would wait for that lookup to time out (5 s: 6 of 32 runs at a worker's start). Off
# unless the admin turned it on (HF_HUB_DISABLE_TELEMETRY=0). huggingface_hub reads it when
# it is first imported, which is after this package (agent_core/llm.py).
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
