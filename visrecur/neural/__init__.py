"""Neural alignment: neural targets as labelled RDMs, model RDMs of every (state, time), their
comparison with noise ceilings and bootstrap intervals, paired model comparisons, the hierarchy contrast, time-resolved MEG
fits and encoding models."""
from .bootstrap import bootstrap_scores, percentile_ci, resampled_pairs
from .compare import compare_models
from .errors import NeuralDataError, RDMError, ScoringError
from .hierarchy import peak_contrast
from .rdm import align, as_rdm, model_rdms, upper_triangle
from .rsa import METHODS, compare, noise_ceiling, peak, rsa_scores
from .targets import IDS_92, TARGETS, load_rdm_file, load_target

__all__ = ["bootstrap_scores", "compare_models", "percentile_ci", "resampled_pairs", "NeuralDataError", "RDMError", "ScoringError",
           "peak_contrast", "align", "as_rdm", "model_rdms", "upper_triangle", "METHODS", "compare",
           "noise_ceiling", "peak", "rsa_scores", "IDS_92", "TARGETS", "load_rdm_file", "load_target"]
