import sys

try:
    from agent_core.cli import main
except KeyboardInterrupt:  # Ctrl-C while the command was still loading: nothing was done
    sys.exit(130)

sys.exit(main())
