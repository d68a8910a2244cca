"""Brain regions -> model states, by name: an explicit mapping, never a search over layers (Brain-Score's
layer selection needs its public data, which lives on S3)."""
from __future__ import annotations

from typing import Mapping

from visrecur.errors import InputError
from visrecur.architecture.zoo import VENTRAL_STREAM_STATES

# the recording targets of Brain-Score's BrainModel
BRAINSCORE_REGIONS = ("V1", "V2", "V4", "IT")


class RegionError(InputError):
    """A region with no model state mapped to it, or a mapping to a state the model lacks."""


def region_states(state_names, mapping: Mapping[str, str] | None = None) -> dict[str, str]:
    """{region: state}. Without ``mapping``: each of V1, V2, V4, IT maps to the state of the same name
    where the model has one (visrecur's ventral-stream models name their states so). A ``mapping`` is
    taken as given and checked against the model's states."""
    names = list(state_names)
    if mapping is None:
        return {region: region for region in VENTRAL_STREAM_STATES if region in names}
    out = {}
    for region, state in dict(mapping).items():
        if state not in names:
            raise RegionError(f"region {region!r} is mapped to state {state!r}, which this model does not have; "
                              f"its states are {names}")
        out[str(region)] = str(state)
    return out


def state_for(region: str, mapping: Mapping[str, str], state_names) -> str:
    """The state recorded for ``region``, or one line naming the regions mapped and how to map more."""
    if region not in mapping:
        example = ", ".join(f"{r!r}: {s!r}" for r, s in
                            zip([region] + [r for r in BRAINSCORE_REGIONS if r != region], list(state_names)[-1:]))
        raise RegionError(f"region {region!r} has no model state mapped to it (mapped: "
                          f"{', '.join(f'{r}->{s}' for r, s in mapping.items()) or 'none'}); pass "
                          f"region_states={{{example}, ...}} with one of the model's states {list(state_names)}")
    return mapping[region]


def behavior_features(names, arrival_time, state: str | None, step: int | None, readout_time: int,
                      max_step: int | None = None) -> tuple[str, int]:
    """The (state, step) behavioural readouts are fitted on, for a model with states ``names`` first
    reached at ``arrival_time(state)``: default the last state at ``readout_time - 1`` (the step the
    readout at ``readout_time`` reads); a state the model lacks, or a step where the state holds no
    activity, is one line."""
    names = list(names)
    state = names[-1] if state is None else str(state)
    if state not in names:
        raise InputError(f"behavior state {state!r} is not a state of this model; its states are {names}")
    step = readout_time - 1 if step is None else int(step)
    arrival = arrival_time(state)
    if step < arrival or (max_step is not None and step > max_step):
        raise InputError(f"behavior step {step}: state {state} holds activity from step {arrival}"
                         + (f" to step {max_step}" if max_step is not None else "") + "; give a step in that range")
    return state, step
