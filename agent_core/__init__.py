"""agent runtime: LLM agents that work through business objectives step by step, under
budgets, policy and human approval, with every action in a tamper-evident ledger."""

__version__ = "0.1.0"
