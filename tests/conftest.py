import os
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def free_port() -> int:
    """A TCP port that is free now (the system picks it: bind to port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BRAINSCORE_VARIABLES = ("BS_INSTALL_DEPENDENCIES", "BRAINIO_HOME", "RESULTCACHING_HOME", "BRAINSCORE_HOME", "MT_HOME")


@pytest.fixture(scope="session")
def brainscore(tmp_path_factory):
    """brainscore_vision, imported with its caches in a temporary folder and plugin installs off; the
    tests that use it skip where it is not installed (the core environment)."""
    from visrecur.brainscore import available, isolate, require

    if not available():
        pytest.skip('brainscore-vision is not installed (pip install -e ".[brainscore]"; .ci/run\'s second stage)')
    saved = {name: os.environ.get(name) for name in BRAINSCORE_VARIABLES}
    isolate(tmp_path_factory.mktemp("brainscore-home"), force=True)
    yield require()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run ten times faster on one thread than on threads competing for this machine's cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
