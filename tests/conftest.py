import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def free_port() -> int:
    """A TCP port that is free now (the system picks it: bind to port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
