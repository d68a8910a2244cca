"""A Brain-Score model plugin folder for a visrecur model: ``__init__.py`` (registers the model in
``model_registry``), ``model.py`` (a ``VisrecurBrainModel`` with its time mapping written out),
``requirements.txt`` (visrecur pinned to a git tag: it is not on PyPI), ``test.py`` and ``metadata.yaml``
(Brain-Score's metadata schema 2.0). A checkpoint that is not shipped with visrecur is copied into the
folder (inference-only). The folder is written beside its destination and renamed when complete.

Writing a plugin needs no Brain-Score; checking it does (tests/test_brainscore_plugin.py runs
Brain-Score's generic model-plugin tests on a generated folder).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Mapping

from visrecur import __version__
from visrecur.artifacts.checkpoint import PRETRAINED, export_weights
from visrecur.artifacts.models import display_name, load_model
from visrecur.errors import InputError
from visrecur.artifacts.io import atomic_path, writable_ancestor
from visrecur.timing import TimeMapping
from .environment import DEFAULT_VISUAL_DEGREES

WEIGHTS_FILE = "weights.pt"
IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
BIBTEX = """@article{liao2016bridging,
  title={Bridging the Gaps Between Residual Learning, Recurrent Neural Networks and Visual Cortex},
  author={Liao, Qianli and Poggio, Tomaso},
  journal={arXiv preprint arXiv:1604.03640},
  year={2016},
  url={https://arxiv.org/abs/1604.03640}
}"""


def repository_url() -> str | None:
    """Where Brain-Score installs visrecur from: $VISRECUR_GIT_URL, else the installed package's
    ``Repository`` project URL (none while pyproject.toml names none)."""
    if os.environ.get("VISRECUR_GIT_URL"):
        return os.environ["VISRECUR_GIT_URL"]
    try:
        from importlib.metadata import metadata

        for entry in metadata("visrecur").get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip().lower() in ("repository", "source"):
                return url.strip()
    except Exception:  # not installed as a distribution (e.g. PYTHONPATH only)
        return None
    return None


def default_identifier(model: str) -> str:
    return f"visrecur-{display_name(model)}"


def check_destination(out: Path, overwrite: bool) -> None:
    if not out.name.isidentifier():
        raise InputError(f"plugin folder name {out.name!r} must be a Python identifier (Brain-Score imports it as "
                         f"brainscore_vision.models.<folder>), e.g. {re.sub(r'[^0-9A-Za-z_]', '_', out.name) or 'visrecur_model'}")
    if out.exists() and not out.is_dir():
        raise InputError(f"{str(out)!r} exists and is not a folder; give a new folder for the plugin")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{str(out)!r} already exists and is not empty; pass --overwrite to replace it")
    folder, ok = writable_ancestor(out.parent)
    if not ok:
        raise InputError(f"{str(folder)!r} is not a writable folder; give --out somewhere you can write")


def write_plugin(model: str, out: str | Path, *, git_url: str | None = None, git_tag: str | None = None,
                 identifier: str | None = None, time_mapping: TimeMapping | None = None,
                 region_states: Mapping[str, str] | None = None,
                 visual_degrees: float = DEFAULT_VISUAL_DEGREES, readout_time: int | None = None,
                 overwrite: bool = False) -> Path:
    """Write the plugin folder ``out`` for ``model`` (a shipped pretrained name or a checkpoint path)."""
    from .regions import region_states as map_regions

    out = Path(out)
    identifier = identifier or default_identifier(str(model))
    if not IDENTIFIER.match(identifier):
        raise InputError(f"identifier {identifier!r} may hold only letters, digits, '_', '.', '-' (it is written "
                         "into Python source)")
    check_destination(out, overwrite)
    url = git_url or repository_url()
    if not url:
        raise InputError("give --git-url URL: the git repository Brain-Score installs visrecur from (visrecur is "
                         "not on PyPI; requirements.txt pins visrecur @ git+URL@TAG), or set VISRECUR_GIT_URL")
    tag = git_tag or f"v{__version__}"
    shipped = str(model) in PRETRAINED
    if not shipped and not (str(model).endswith(".pt") or Path(model).is_file()):
        raise InputError(f"model {model!r} is neither a shipped pretrained model ({', '.join(PRETRAINED)}) nor a "
                         "checkpoint file; a plugin needs trained weights")
    source = load_model(str(model))  # refuses a missing, empty or truncated checkpoint now
    spec = source.model.spec
    mapping = time_mapping if time_mapping is not None else TimeMapping()
    regions = map_regions([s.name for s in spec.graph.states], region_states)
    if not regions:
        raise InputError(f"no Brain-Score region maps to a state of this model (states "
                         f"{[s.name for s in spec.graph.states]}); give --region REGION=STATE")
    readout = spec.readout_time if readout_time is None else int(readout_time)
    spec.check_readout_time(readout)
    with atomic_path(out, folder=True) as tmp:  # the whole folder appears at once, or not at all
        if not shipped:
            export_weights(model, tmp / WEIGHTS_FILE)
        files = {
            "__init__.py": _init_py(identifier),
            "model.py": _model_py(identifier, str(model) if shipped else None, mapping, regions, visual_degrees,
                                  readout),
            "requirements.txt": f"visrecur @ git+{url}@{tag}\n",
            "test.py": _test_py(identifier, mapping, regions, visual_degrees),
            "metadata.yaml": _metadata(identifier, source, mapping, visual_degrees, readout, url, tag),
        }
        for name, text in files.items():
            (tmp / name).write_text(text)
    return out


def _mapping_source(mapping: TimeMapping) -> str:
    return (f"TimeMapping(ms_per_step={tuple(mapping.ms_per_step)!r}, onset_ms={mapping.onset_ms!r}, "
            f"state_onset_ms={dict(mapping.state_onset_ms)!r})")


def _describe_bins(mapping: TimeMapping) -> str:
    w, onset = mapping.step_ms, mapping.onset_ms
    return f"step t covers [{onset:g} + {w:g} t, {onset:g} + {w:g} (t + 1)) ms after stimulus onset"


def _init_py(identifier: str) -> str:
    return ("from brainscore_vision import model_registry\n\nfrom .model import get_model\n\n"
            f"model_registry['{identifier}'] = lambda: get_model('{identifier}')\n")


def _model_py(identifier, shipped, mapping, regions, visual_degrees, readout) -> str:
    model = repr(shipped) if shipped else f"str(Path(__file__).parent / {WEIGHTS_FILE!r})"
    return f'''"""Brain-Score plugin: the visrecur model {identifier}, written by python -m visrecur.brainscore plugin
(visrecur {__version__}). Time bins map to model steps through visrecur.timing: {_describe_bins(mapping)};
a bin takes the steps it overlaps, weighted by the overlap; a state not yet reached counts as zero."""
from pathlib import Path

from visrecur.brainscore import VisrecurBrainModel
from visrecur.timing import TimeMapping

MODEL = {model}
REGION_STATES = {dict(regions)!r}
TIME_MAPPING = {_mapping_source(mapping)}
VISUAL_DEGREES = {visual_degrees!r}
READOUT_TIME = {readout!r}  # labels and probabilities: the post-net at this step
BIBTEX = """{BIBTEX}"""


def get_model(identifier):
    assert identifier == {identifier!r}
    return VisrecurBrainModel(MODEL, identifier=identifier, region_states=REGION_STATES, time_mapping=TIME_MAPPING,
                              visual_degrees=VISUAL_DEGREES, readout_time=READOUT_TIME)


def get_bibtex(identifier):
    return BIBTEX
'''


def _test_py(identifier, mapping, regions, visual_degrees) -> str:
    steps = [0, 1, 2]
    bins = [[float(a), float(b)] for a, b in mapping.bins(steps)]
    return f'''import brainscore_vision


def test_identifier():
    model = brainscore_vision.load_model({identifier!r})
    assert model.identifier == {identifier!r}


def test_time_mapping_and_regions():
    model = brainscore_vision.load_model({identifier!r})
    assert model.time_mapping.bins({steps!r}).tolist() == {bins!r}  # ms, steps 0, 1, 2
    assert model.region_states == {dict(regions)!r}
    assert model.visual_degrees() == {visual_degrees!r}
'''


def _metadata(identifier, source, mapping, visual_degrees, readout, url, tag) -> str:
    import yaml

    spec = source.model.spec
    parameters = int(sum(p.numel() for p in source.model.parameters()))
    h, w = (int(v) for v in source.preprocess.crop_size)
    classes = list(source.classes)
    checkpoint = "shipped with visrecur" if not source.checkpoint else Path(source.checkpoint).name
    states = ", ".join(f"{s.name} {s.size[0]}x{s.size[1]}x{s.channels}" for s in spec.graph.states)
    document = {"schema_version": "2.0", "domain": "vision", "models": {identifier: {
        "model": {
            "display_name": identifier,
            "version": f"visrecur {__version__}, {spec.name}",
            "architecture": {"family": "recurrent_convolutional_neural_network",
                             "description": f"multi-state fully recurrent network (Liao & Poggio 2016): {states}"},
            "parameter_count": parameters, "parameter_count_exact": True,
            "trainable_layers": f"states {', '.join(s.name for s in spec.graph.states)} and a linear readout",
            "recurrent": True,
            "input_resolution": {"channels": 3, "height": h, "width": w},
            "visual_degrees": float(visual_degrees),
            "visual_degrees_description": "a stated default; Brain-Score rescales stimuli to it",
            "supervision": {"type": "supervised", "description": "image classification"},
        },
        "training": {"objective": f"classification into {len(classes)} classes" if classes else None,
                     "preprocessing": source.preprocess.describe()},
        "io": {"modality": "image",
               "interface": (f"time-binned recordings: {_describe_bins(mapping)} (visrecur.timing); "
                             f"labels and probabilities from the post-net at readout time {readout}"),
               "output_format": "NeuroidAssembly presentation x neuroid x time_bin; BehavioralAssembly"},
        "provenance": {"checkpoint": checkpoint, "source_url": f"{url}/tree/{tag}" if url.startswith("https://")
                       else None},
        "legal": {"license": "MIT"},
        "people": {"creators": ["visrecur contributors"]},
    }}}
    return "# Brain-Score model metadata (schema 2.0), written by python -m visrecur.brainscore plugin\n" + \
        yaml.safe_dump(json.loads(json.dumps(document)), sort_keys=False)
