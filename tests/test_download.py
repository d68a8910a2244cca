"""Downloads are checked against sha256 (tested on local files: no network here)."""
import hashlib
import json

import pytest

from visrecur.download import MANIFEST, DownloadError, fetch, fetch_set
from visrecur.artifacts.io import data_root


def test_fetch_checks_sha256(tmp_path):
    src = tmp_path / "source.bin"
    src.write_bytes(b"visual cortex" * 1000)
    good = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = fetch(src.as_uri(), tmp_path / "out" / "file.bin", good, progress=False)
    assert dest.read_bytes() == src.read_bytes()
    with pytest.raises(DownloadError, match="expected"):
        fetch(src.as_uri(), tmp_path / "out" / "other.bin", "0" * 64, progress=False)
    assert not (tmp_path / "out" / "other.bin").exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["file.bin"]  # no partial files left
    with pytest.raises(DownloadError, match="cannot download"):
        fetch((tmp_path / "missing").as_uri(), tmp_path / "x.bin", good, progress=False)


def test_manifest_matches_the_shared_files(tmp_path):
    folder = data_root() / "92images"
    if not folder.is_dir():
        pytest.skip("shared data not available")
    entries = json.loads(MANIFEST.read_text())["sets"]["92images"]["files"]
    for name, entry in entries.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == entry["sha256"], name
    # a manifest pointing at local copies: fetch_set verifies and places every file
    local = {"sets": {"92images": {"files": {n: {**e, "url": (folder / n).as_uri()} for n, e in entries.items()}}}}
    (tmp_path / "m.json").write_text(json.dumps(local))
    out = fetch_set("92images", tmp_path / "dest", tmp_path / "m.json", progress=False)
    assert sorted(p.name for p in out.iterdir()) == sorted(entries)
