import sys

from agent_core.cli import main

sys.exit(main())
