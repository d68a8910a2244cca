"""A Brain-Score model plugin folder for a visrecur model: ``__init__.py`` (registers the model in
``model_registry``), ``model.py`` (a ``VisrecurBrainModel`` with its time mapping written out),
``requirements.txt`` (visrecur pinned to a git *commit*, which cannot move as a tag can; the tag, if
given, in a comment: visrecur is not on PyPI), ``test.py`` and ``metadata.yaml`` (Brain-Score's metadata
schema 2.0, the time mapping written into its interface text). A checkpoint that is not shipped with
visrecur is copied into the folder (inference-only). Everything is checked before anything is written;
the folder is written beside its destination and renamed when complete.

Writing a plugin needs no Brain-Score; checking it does (``python -m visrecur.brainscore check DIR``:
Brain-Score's generic model-plugin tests on the folder, offline).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import warnings
from pathlib import Path
from typing import Mapping

from visrecur import __version__
from visrecur.artifacts.checkpoint import PRETRAINED, export_weights
from visrecur.artifacts.models import display_name, load_model
from visrecur.errors import InputError
from visrecur.artifacts.io import atomic_path, check_replaceable, writable_ancestor
from visrecur.timing import TimeMapping
from .environment import DEFAULT_VISUAL_DEGREES

WEIGHTS_FILE = "weights.pt"
COMMIT = re.compile(r"^[0-9a-f]{40}$")
REPOSITORY = Path(__file__).resolve().parents[2]  # the checkout visrecur runs from (a git work tree, or not)
IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
BIBTEX = """@article{liao2016bridging,
  title={Bridging the Gaps Between Residual Learning, Recurrent Neural Networks and Visual Cortex},
  author={Liao, Qianli and Poggio, Tomaso},
  journal={arXiv preprint arXiv:1604.03640},
  year={2016},
  url={https://arxiv.org/abs/1604.03640}
}"""


def _git(*args) -> str | None:
    """``git -C REPOSITORY args`` output, or None where there is no git or no repository."""
    try:
        run = subprocess.run(["git", "-C", str(REPOSITORY), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return run.stdout.strip() if run.returncode == 0 else None


def repository_url() -> str | None:
    """Where Brain-Score installs visrecur from: $VISRECUR_GIT_URL, else this checkout's ``origin`` remote,
    else the installed package's ``Repository`` project URL (pyproject.toml's [project.urls])."""
    if os.environ.get("VISRECUR_GIT_URL"):
        return os.environ["VISRECUR_GIT_URL"]
    origin = _git("remote", "get-url", "origin")
    if origin:
        return origin
    try:
        from importlib.metadata import metadata

        for entry in metadata("visrecur").get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip().lower() in ("repository", "source"):
                return url.strip()
    except Exception:  # not installed as a distribution (e.g. PYTHONPATH only)
        return None
    return None


def resolve_commit(commit: str | None, tag: str | None) -> str:
    """The full commit hash requirements.txt pins: ``commit`` (expanded from a short hash by this
    checkout), else the commit ``tag`` names in this checkout, else this checkout's HEAD."""
    if commit is not None:
        text = str(commit).strip().lower()
        if not re.fullmatch(r"[0-9a-f]{7,40}", text):
            raise InputError(f"--git-commit {commit!r} is not a commit hash; give the 40 hex digits of a pushed commit "
                             "(git rev-parse HEAD)")
        full = text if COMMIT.match(text) else _git("rev-parse", "--verify", "--quiet", f"{text}^{{commit}}")
        if not full:
            raise InputError(f"--git-commit {commit!r} is short and this checkout cannot expand it; give all 40 hex "
                             "digits")
        return full
    if tag is not None:
        full = _git("rev-parse", "--verify", "--quiet", f"{tag}^{{commit}}")
        if not full:
            raise InputError(f"tag {tag!r} is not in this checkout, so its commit is unknown; give --git-commit HASH "
                             "(the commit the tag names)")
        return full
    head = _git("rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if not head:
        raise InputError("give --git-commit HASH: visrecur does not run from a git checkout here, so the commit that "
                         "requirements.txt pins is unknown")
    if _git("status", "--porcelain", "--untracked-files=no"):
        warnings.warn(f"this checkout has uncommitted changes; the plugin installs commit {head[:12]} without them "
                      "(commit and push them first, or give --git-commit)", UserWarning, stacklevel=3)
    return head


def default_identifier(model: str) -> str:
    return f"visrecur-{display_name(model)}"


PLUGIN_FILES = {"__init__.py", "model.py", "requirements.txt", "test.py", "metadata.yaml", WEIGHTS_FILE, "__pycache__"}


def is_plugin_folder(out: Path) -> bool:
    """A plugin folder ``write_plugin`` made: only its files, and its requirements pin visrecur."""
    requirements = out / "requirements.txt"
    return (out.is_dir() and {p.name for p in out.iterdir()} <= PLUGIN_FILES and requirements.is_file()
            and "visrecur @ git+" in requirements.read_text())


def check_destination(out: Path, overwrite: bool) -> None:
    if not out.name.isidentifier():
        raise InputError(f"plugin folder name {out.name!r} must be a Python identifier (Brain-Score imports it as "
                         f"brainscore_vision.models.<folder>), e.g. {re.sub(r'[^0-9A-Za-z_]', '_', out.name) or 'visrecur_model'}")
    if not (out.is_dir() and not out.is_symlink() and not any(out.iterdir())):  # an empty folder holds nothing
        check_replaceable(out, is_plugin_folder, "Brain-Score plugin folder", overwrite, "--out")
    folder, ok = writable_ancestor(out.parent)
    if not ok:
        raise InputError(f"{str(folder)!r} is not a writable folder; give --out somewhere you can write")


def write_plugin(model: str, out: str | Path, *, git_url: str | None = None, git_tag: str | None = None,
                 git_commit: str | None = None, identifier: str | None = None,
                 time_mapping: TimeMapping | None = None, time_preset: str | None = None,
                 region_states: Mapping[str, str] | None = None,
                 visual_degrees: float = DEFAULT_VISUAL_DEGREES, readout_time: int | None = None,
                 past_trained: str = "answer", image_fit: str = "stretch", behavior_state: str | None = None,
                 behavior_step: int | None = None, overwrite: bool = False) -> Path:
    """Write the plugin folder ``out`` for ``model`` (a shipped pretrained name or a checkpoint path).
    The options are ``VisrecurBrainModel``'s; ``time_preset`` ("cornet-s") builds the time mapping from
    Brain-Score's CORnet-S table (needs brainscore-vision). Refused, one line each and nothing written: a
    model file that does not exist, per-state timing for states the model lacks, a bad commit."""
    from .regions import behavior_features, region_states as map_regions
    from .timebins import PAST_TRAINED

    out = Path(out)
    if isinstance(visual_degrees, bool) or not isinstance(visual_degrees, (int, float)) or not 0 < visual_degrees < 9000:
        raise InputError(f"visual_degrees={visual_degrees!r} must be a positive number of degrees, e.g. 8")
    identifier = identifier or default_identifier(str(model))
    if not IDENTIFIER.match(identifier):
        raise InputError(f"identifier {identifier!r} may hold only letters, digits, '_', '.', '-' (it is written "
                         "into Python source)")
    check_destination(out, overwrite)
    from visrecur.timed import reference

    from .model_time import model_time

    # a reference architecture (visrecur.timed.reference) is named, not copied: its weights are drawn from
    # seed 0 wherever it is built, the same everywhere
    shipped = str(model) in PRETRAINED or str(model) in reference.REFERENCE
    if not shipped and not (str(model).endswith(".pt") or Path(model).is_file()):
        raise InputError(f"model {model!r} is neither a shipped pretrained model ({', '.join(PRETRAINED)}), a "
                         f"reference architecture ({', '.join(reference.list_reference())}) nor a checkpoint file; a plugin needs "
                         "trained weights, or a reference architecture (built from seed 0)")
    source = load_model(str(model))  # refuses a missing, empty or truncated checkpoint now
    times = model_time(source.model)
    states = times.states
    regions = map_regions(states, region_states)
    if not regions:
        raise InputError(f"no Brain-Score region maps to a state of this model (states {states}); give "
                         "--region REGION=STATE")
    if time_preset is not None and time_mapping is not None:
        raise InputError("give a time preset or a time mapping (--ms-per-step, --onset-ms, --state-onset, "
                         "--state-ms-per-step), not both")
    if time_preset is not None:
        from .presets import preset_mapping

        time_mapping = preset_mapping(time_preset, regions, {name: times.arrival(name) for name in states})
    mapping = TimeMapping.resolve(time_mapping, source.time_mapping, "model")
    mapping.check_states(states)
    readout = times.default_readout_time if readout_time is None else int(readout_time)
    times.check_readout_time(readout)
    behavior = behavior_features(states, times.arrival, behavior_state,
                                 times.readout_step(readout) if behavior_step is None else behavior_step, readout,
                                 times.last_step(behavior_state or states[-1]) if (behavior_state or states[-1])
                                 in states else None)
    if past_trained not in PAST_TRAINED:
        raise InputError(f"past_trained {past_trained!r} must be one of {', '.join(PAST_TRAINED)}")
    if image_fit not in ("stretch", "crop"):
        raise InputError(f"image_fit {image_fit!r} must be stretch or crop")
    url = git_url or repository_url()
    if not url:
        raise InputError("give --git-url URL: the git repository Brain-Score installs visrecur from (visrecur is "
                         "not on PyPI; requirements.txt pins visrecur @ git+URL@COMMIT), or set VISRECUR_GIT_URL")
    commit = resolve_commit(git_commit, git_tag)
    options = {"region_states": dict(regions), "visual_degrees": visual_degrees, "readout_time": readout,
               "past_trained": past_trained, "image_fit": image_fit, "behavior_state": behavior[0],
               "behavior_step": behavior[1]}
    pin = f"visrecur @ git+{url}@{commit}\n"
    if git_tag:
        pin = f"# visrecur {__version__}, tag {git_tag} (the commit below: a tag can move, a commit cannot)\n" + pin
    with atomic_path(out, folder=True) as tmp:  # the whole folder appears at once, or not at all
        if not shipped:
            export_weights(model, tmp / WEIGHTS_FILE)
        files = {
            "__init__.py": _init_py(identifier),
            "model.py": _model_py(identifier, str(model) if shipped else None, mapping, options),
            "requirements.txt": pin,
            "test.py": _test_py(identifier, mapping, regions, visual_degrees),
            "metadata.yaml": _metadata(identifier, source, mapping, options, url, commit),
        }
        for name, text in files.items():
            (tmp / name).write_text(text)
    return out


def _mapping_source(mapping: TimeMapping) -> str:
    return (f"TimeMapping(ms_per_step={tuple(mapping.ms_per_step)!r}, onset_ms={mapping.onset_ms!r}, "
            f"state_onset_ms={dict(mapping.state_onset_ms)!r}, "
            f"state_ms_per_step={ {k: tuple(v) for k, v in mapping.state_ms_per_step.items()}!r})")


def _describe_bins(mapping: TimeMapping) -> str:
    def one(state):
        w, onset = mapping.state_step_ms(state), float(mapping.bins([0], state)[0, 0])
        return f"[{onset:g} + {w:g} t, {onset:g} + {w:g} (t + 1)) ms"

    text = f"step t covers {one(None)} after stimulus onset"
    special = sorted(set(mapping.state_onset_ms) | set(mapping.state_ms_per_step))
    return text + "".join(f"; {state}'s step t {one(state)}" for state in special)


def _init_py(identifier: str) -> str:
    return ("from brainscore_vision import model_registry\n\nfrom .model import get_model\n\n"
            f"model_registry['{identifier}'] = lambda: get_model('{identifier}')\n")


def _model_py(identifier, shipped, mapping, options) -> str:
    model = repr(shipped) if shipped else f"str(Path(__file__).parent / {WEIGHTS_FILE!r})"
    return f'''"""Brain-Score plugin: the visrecur model {identifier}, written by python -m visrecur.brainscore plugin
(visrecur {__version__}). Time bins map to model steps through visrecur.timing: {_describe_bins(mapping)};
a bin takes the steps it overlaps, weighted by the overlap; a zero-length bin is the instant it names;
time before a state responds holds zeros; bins past the last trained step are flagged (past_trained)."""
from pathlib import Path

from visrecur.brainscore import VisrecurBrainModel
from visrecur.timing import TimeMapping

MODEL = {model}
TIME_MAPPING = {_mapping_source(mapping)}
OPTIONS = {options!r}  # regions, visual degrees, readout time, late bins, image fit, behaviour's features
BIBTEX = """{BIBTEX}"""


def get_model(identifier):
    assert identifier == {identifier!r}
    return VisrecurBrainModel(MODEL, identifier=identifier, time_mapping=TIME_MAPPING, **OPTIONS)


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


def _metadata(identifier, source, mapping, options, url, commit) -> str:
    import yaml

    from visrecur.timed import is_timed

    model = source.model
    parameters = int(sum(p.numel() for p in model.parameters()))
    h, w = (int(v) for v in source.preprocess.crop_size)
    classes = list(source.classes)
    checkpoint = "shipped with visrecur" if not source.checkpoint else Path(source.checkpoint).name
    if is_timed(model):  # a reference architecture: its paper, its areas' steps, its weights' origin
        about = model.to_dict()
        states = ", ".join(f"{a} steps {list(s)}" for a, s in model.steps.items())
        name, architecture = model.name, f"{about.get('paper', model.name)}: {states}"
        recurrent = any(len(s) > 1 for s in model.steps.values())
        checkpoint = f"{about.get('weights', 'random initialisation')} (visrecur.timed.reference, seed 0)"
        areas = list(model.areas)
    else:
        spec = model.spec
        states = ", ".join(f"{s.name} {s.size[0]}x{s.size[1]}x{s.channels}" for s in spec.graph.states)
        name, architecture = spec.name, f"multi-state fully recurrent network (Liao & Poggio 2016): {states}"
        recurrent, areas = True, [s.name for s in spec.graph.states]
    document = {"schema_version": "2.0", "domain": "vision", "models": {identifier: {
        "model": {
            "display_name": identifier,
            "version": f"visrecur {__version__}, {name}",
            "architecture": {"family": "recurrent_convolutional_neural_network" if recurrent
                             else "convolutional_neural_network", "description": architecture},
            "parameter_count": parameters, "parameter_count_exact": True,
            "trainable_layers": f"states {', '.join(areas)} and a linear readout",
            "recurrent": recurrent,
            "input_resolution": {"channels": 3, "height": h, "width": w},
            "visual_degrees": float(options["visual_degrees"]),
            "visual_degrees_description": "a stated default; Brain-Score rescales stimuli to it",
            "supervision": {"type": "supervised", "description": "image classification"},
        },
        "training": {"objective": f"classification into {len(classes)} classes" if classes else None,
                     "preprocessing": source.preprocess.describe()},
        "io": {"modality": "image",
               "interface": (f"time-binned recordings: {_describe_bins(mapping)} (visrecur.timing; time mapping "
                             f"{json.dumps(mapping.to_dict())}); labels from the readout at readout time "
                             f"{options['readout_time']}; probabilities, fitted labels and odd-one-out from state "
                             f"{options['behavior_state']} at step {options['behavior_step']}, pooled; images "
                             f"{'resized whole' if options['image_fit'] == 'stretch' else 'centre-cropped'}"),
               "output_format": "NeuroidAssembly presentation x neuroid x time_bin; BehavioralAssembly"},
        "provenance": {"checkpoint": checkpoint, "source_url": f"{url.removesuffix('.git')}/tree/{commit}"
                       if url.startswith("https://") else None},
        "legal": {"license": "MIT"},
        "people": {"creators": ["visrecur contributors"]},
    }}}
    return "# Brain-Score model metadata (schema 2.0), written by python -m visrecur.brainscore plugin\n" + \
        yaml.safe_dump(json.loads(json.dumps(document)), sort_keys=False)
