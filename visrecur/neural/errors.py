"""Errors of neural scoring: each names the bad input and the fix (all are VisrecurErrors, so commands
print one ``error: ...`` line and exit 2)."""
from visrecur.errors import InputError


class NeuralDataError(InputError):
    """A neural data file that is missing, unreadable, or laid out other than its loader expects."""


class RDMError(InputError):
    """An RDM that is not square, not symmetric, or whose stimuli do not match the model's."""


class ScoringError(InputError):
    """A scoring request the data cannot answer (too few subjects, a missing state, a time outside the data)."""
