"""User-facing errors, and how every command reports them: one ``error: ...`` line, exit code 2."""
import functools
import sys


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


def report_errors(main=None, *, interrupted: str = "interrupted"):
    """Decorate a command-line ``main``: a VisrecurError (or a file the system refuses) becomes one
    ``error: ...`` line and exit code 2; Ctrl-C prints ``interrupted`` and exits with 130. Use as
    ``@report_errors`` or ``@report_errors(interrupted="...")``."""
    if main is None:
        return functools.partial(report_errors, interrupted=interrupted)

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs) or 0
        except VisrecurError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except OSError as err:  # e.g. an unwritable output folder: a user problem, not a bug
            print(f"error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(interrupted, file=sys.stderr)
            return 130

    return wrapper
