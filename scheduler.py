"""The worker process: `python scheduler.py [--once] [--concurrency N]`.

An APScheduler process that claims queued runs and executes them, fires recurring
objectives, and runs maintenance; the same as `python -m agent_core worker`.
"""

import sys

from agent_core.cli import main

if __name__ == "__main__":
    sys.exit(main(["worker", *sys.argv[1:]]))
