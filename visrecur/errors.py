"""User-facing errors: each message names the problem and the fix."""


class VisrecurError(ValueError):
    """A problem with what the user asked for. The message says what is wrong and how to fix it."""


class SpecError(VisrecurError):
    """A model specification (graph, states, transitions, sizes, readout time) that cannot be built."""


class TimeStepError(VisrecurError):
    """A time step the model cannot run or read out."""


class InputError(VisrecurError):
    """Images or stimuli of the wrong shape, type or content."""


class CheckpointError(VisrecurError):
    """A checkpoint that is missing, unreadable, or made for another architecture."""


def report_errors(main):
    """Decorate a command-line ``main``: a VisrecurError becomes one ``error: ...`` line and exit code 2."""
    import functools
    import sys

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs) or 0
        except VisrecurError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2

    return wrapper
