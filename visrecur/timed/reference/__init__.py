"""Reference time-resolved architectures by name, randomly initialised: ``build("cornet_s", seed=0)``.

Each is its plain ``nn.Module`` (``.module``) adapted to the timed-model protocol. Nothing is downloaded:
a user with a public CORnet checkpoint loads it into ``build(name).module`` with
``load_cornet_state_dict``.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable

import torch

from visrecur.errors import InputError
from visrecur.recording.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from visrecur.timing import TimeMapping

# Brain-Score's CORnet-S time table (brainscore_vision/models/cornet_s, TIME_MAPPINGS): per area
# (first bin's start ms, bin width ms, steps); step k covers [start + k width, start + (k + 1) width)
CORNET_S_BRAINSCORE = {"V1": (50, 100, 1), "V2": (70, 100, 2), "V4": (90, 50, 4), "IT": (100, 100, 2)}


def cornet_s_time_mapping() -> TimeMapping:
    """Brain-Score's CORnet-S table as a ``TimeMapping``: per-area onsets and step widths, exact ms."""
    return TimeMapping(100.0, 0.0, {a: start for a, (start, _, _) in CORNET_S_BRAINSCORE.items()},
                       {a: width for a, (_, width, _) in CORNET_S_BRAINSCORE.items()})


def _imagenet(size: int, resize: int | None = None) -> Preprocess:
    return Preprocess((size, size), IMAGENET_MEAN, IMAGENET_STD, resize_size=resize)


CORNET_AREAS = {area: f"{area}.output" for area in ("V1", "V2", "V4", "IT")}
CORNET_NOTE = {"paper": "Kubilius et al. 2018/2019 (CORnet)", "weights": "random initialisation"}


def _cornet_z(num_classes=1000):
    from visrecur.timed.reference.cornet import CORnetZ

    # feedforward: time = depth, each area one step at its depth
    return CORnetZ(num_classes), {"areas": CORNET_AREAS, "readout": "decoder.linear",
                                      "first_step": {a: k for k, a in enumerate(CORNET_AREAS)},
                                      "preprocess": _imagenet(224, 256), "description": CORNET_NOTE}


def _cornet_rt(num_classes=1000, times=5):
    from visrecur.timed.reference.cornet import CORnetRT

    return CORnetRT(times, num_classes), {"areas": CORNET_AREAS, "readout": "decoder.linear",
                                              "preprocess": _imagenet(224, 256), "description": CORNET_NOTE}


def _cornet_s(num_classes=1000):
    from visrecur.timed.reference.cornet import CORnetS

    return CORnetS(num_classes), {"areas": CORNET_AREAS, "readout": "decoder.linear", "preprocess": _imagenet(224, 256),
                                      "time_mapping": cornet_s_time_mapping(),
                                      "description": {**CORNET_NOTE, "time_mapping": "Brain-Score's CORnet-S table"}}


def _blnet(num_classes=565, steps=8, widths=None):
    from visrecur.timed.reference.blnet import WIDTHS, BLNet, area_names

    return BLNet(num_classes, widths=widths or WIDTHS, steps=steps), {
        "areas": {name: f"layers.{k}.output" for k, name in enumerate(area_names())}, "readout": "readout",
        "preprocess": _imagenet(128, 128),
        "description": {"paper": "Spoerer et al. 2020 (BL-net)", "weights": "random initialisation"}}


def _resnet18_time(num_classes=1000):
    from visrecur.timed.reference.resnet_time import AREAS, FIRST_STEP, resnet18

    return resnet18(num_classes), {"areas": AREAS, "readout": "fc", "first_step": FIRST_STEP,
                                       "preprocess": _imagenet(224, 256),
                                       "description": {"paper": "He et al. 2016 (torchvision ResNet-18), time = depth",
                                                    "weights": "random initialisation"}}


REFERENCE: dict[str, Callable] = {"cornet_z": _cornet_z, "cornet_rt": _cornet_rt, "cornet_s": _cornet_s,
                                  "blnet": _blnet, "resnet18_time": _resnet18_time}


def list_reference() -> list[str]:
    return sorted(REFERENCE)


def build(name: str, seed: int | None = 0, input_size: int | None = None, **options):
    """The reference architecture ``name`` as a timed model, its weights drawn from ``seed`` (None: from
    torch's global random state) without touching torch's global random state. ``input_size``: another
    input size than the architecture's (e.g. a smaller one for quick checks); ``options``: the
    architecture's own (``num_classes``; ``times`` of CORnet-RT; ``steps``, ``widths`` of BL-net)."""
    from visrecur.timed.adapter import Adapted
    from visrecur.timed.reference.cornet import init_weights

    if name not in REFERENCE:
        close = difflib.get_close_matches(name, REFERENCE, n=3)
        raise InputError(f"no reference architecture {name!r}" + (f"; did you mean {', '.join(close)}?" if close
                                                                    else f"; choose from {', '.join(REFERENCE)}"))
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        module, adapter = REFERENCE[name](**options)
        if name != "resnet18_time":  # torchvision initialises its own
            init_weights(module)
    module.eval()
    if input_size is not None:
        given = adapter["preprocess"]
        adapter["preprocess"] = Preprocess((input_size, input_size), given.mean, given.std)
    return Adapted(module, name=name, trained=False, **adapter)
