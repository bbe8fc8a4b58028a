import sys


def _exit(code: int) -> None:
    """Exit with `code`. A Ctrl-C that landed inside `exec` of a string (dataclasses build
    their methods so, while modules load) leaves CPython 3.11 marked to end the process by
    SIGINT at exit, although it was handled; evaluating a string clears that mark."""
    exec("pass")  # a constant: clears the mark (see above)
    sys.exit(code)


class StopRequest:
    """The SIGINT and SIGTERM handler of `up` while it loads, until its supervisor takes the
    signals over: it only records the stop, which the supervisor honours first thing, and
    nothing starts (agent_core/up.py reads `stop_requested` off the handler it replaces).

    Python's own handler raised KeyboardInterrupt in whatever code ran next, and now and then
    that was a weakref callback or a finalizer (SQLAlchemy's, importlib's: they run while
    modules load and the store closes), where Python prints "Exception ignored" and drops
    it: `up` went on to start everything and served until killed. A second signal still
    interrupts, for a start-up that is stuck (on a database that does not answer)."""

    stop_requested = False

    def __call__(self, *_: object) -> None:
        if self.stop_requested:
            raise KeyboardInterrupt
        self.stop_requested = True


def _hold_stop_signals() -> None:
    """Install StopRequest, where SIGINT, SIGTERM and SIGHUP have their default action (an
    ignored one, as under nohup, stays ignored)."""
    import signal

    request = StopRequest()
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, request)
    for stop in (signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal closed
        if signal.getsignal(stop) == signal.SIG_DFL:
            signal.signal(stop, request)


def _command(arguments: list[str]) -> str | None:
    return next((argument for argument in arguments if not argument.startswith("-")), None)


try:
    if _command(sys.argv[1:]) == "up":  # before the heavy imports: a Ctrl-C may come now
        _hold_stop_signals()
    from agent_core.cli import main
except KeyboardInterrupt:  # Ctrl-C while the command was still loading: nothing was done
    _exit(130)

_exit(main())
