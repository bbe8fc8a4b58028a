import sys


def _exit(code: int) -> None:
    """Exit with `code`. A Ctrl-C that landed inside `exec` of a string (dataclasses build
    their methods so, while modules load) leaves CPython 3.11 marked to end the process by
    SIGINT at exit, although it was handled; evaluating a string clears that mark."""
    exec("pass")  # a constant: clears the mark (see above)
    sys.exit(code)


try:
    from agent_core.cli import main
except KeyboardInterrupt:  # Ctrl-C while the command was still loading: nothing was done
    _exit(130)

_exit(main())
