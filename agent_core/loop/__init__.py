"""The agent loop: plan (the LLM proposes one JSON step) -> act (policy, then the tool) ->
observe (the result goes back to the LLM) -> decide (next step, or done).

Rooms, from the entry down (each imports only the rooms below it; import-linter checks it):

    orchestrator.py  Orchestrator: the public entry (execute a claimed run, rebuild a
                     run's conversation)
    execution.py     the loop: start, resume, then plan -> act -> observe until the run ends
    resume.py        what a run found unfinished: calls interrupted by a crash (marked
                     unknown, never repeated), the admin's approval decision
    acting.py        policy, then the step's execution path or the approval pause; the one
                     place a tool runs (`run_tool`)
    planning.py      asking the LLM for the next step, with repair turns
    session.py       LoopContext (the collaborators), Session (lease-fenced writes, active
                     time, `end`), RunEnded
    budgets.py       the run's budgets (pure)
    prompting.py     the prompts, reply parsing, observations, the conversation rebuilt from
                     stored steps (pure)

Rooms get what they need as arguments (a `Session`, which holds the `LoopContext`); none
reaches into another object's private members.

How a run's execution ends: by an exception, `RunEnded(run)`, never by a return value. The
end is decided deep inside a room (the LLM fails in the middle of a repair turn, the model
says done, a call needs approval, an approved call turned out tampered with), and every
caller in between would otherwise have to check "did it end?" on each result and pass it
up. With the exception, each room returns only what the loop goes on with (a reply and its
decision, a written step, the run), and `execution.execute_run` catches RunEnded once, at
the top. `Session.end` is the one function that fails or cancels a run: it writes the final
status with its run_failed or run_cancelled event, then raises. The other ways out raise
RunEnded right after the write that already records them: the final step (the run
completed, written with its step in one transaction), the approval pause (written with its
approval), an approval still undecided (paused again) and a worker giving the run back on
shutdown. A lost lease is not an end this worker can write: it stays LeaseLost, caught in
`Orchestrator.execute`.
"""

from agent_core.loop.orchestrator import Orchestrator
from agent_core.loop.session import RunEnded

__all__ = ["Orchestrator", "RunEnded"]
