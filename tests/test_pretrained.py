"""Registry and download of released checkpoints; never touches the network (file:// URLs and a closed local port)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import socket
from pathlib import Path

import pytest
from tests.conftest import SHARED, require_path, shared_path

from vtgkit import pretrained
from vtgkit.errors import CheckpointError, ConfigError
from vtgkit.pretrained import PRETRAINED, PretrainedCheckpoint


def _entry(tmp_path: Path, payload: bytes, **changes: object) -> PretrainedCheckpoint:
    source = tmp_path / "served" / "fake-00000000.pth"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(payload)
    base = PretrainedCheckpoint(
        name="test-fake", model="r2tuning", preset="qvhighlights", filename="fake.pth", url=source.as_uri(),
        sha256=hashlib.sha256(payload).hexdigest(), license="test", source="test",
    )
    return dataclasses.replace(base, **changes)


def _closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/fake.pth"  # nothing listens there once the socket is closed


def test_registry_covers_both_methods_and_names_are_consistent() -> None:
    assert pretrained.list_pretrained("r2tuning") and pretrained.list_pretrained("flashvtg")
    for name, entry in PRETRAINED.items():
        assert name == entry.name and name.startswith(entry.model + "-")
        if entry.model == "r2tuning":
            # Released names carry the first 8 hex digits of the file's sha256 (spec r2-tuning.md §11.1).
            assert re.fullmatch(r"r2_tuning_[a-z0-9_]+-[0-9a-f]{8}\.pth", entry.filename), entry.filename
            assert entry.url is not None and entry.url.endswith("/" + entry.filename)
            assert entry.sha256_prefix is not None
            if entry.sha256 is not None:
                assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
                assert entry.sha256.startswith(entry.sha256_prefix), f"{name}: full hash disagrees with its name"
        else:
            assert entry.url is None and entry.folder_url and entry.sha256 is None


@pytest.mark.parametrize("model", sorted({entry.model for entry in PRETRAINED.values()}))
def test_registry_presets_exist_in_model_configs(model: str) -> None:
    # conventions.md: each method's presets live in vtgkit/models/<method>/config.py as PRESETS.
    config = pytest.importorskip(f"vtgkit.models.{model}.config", reason=f"vtgkit.models.{model} not built yet")
    for entry in PRETRAINED.values():
        if entry.model == model:
            assert entry.preset in config.PRESETS, f"{entry.name}: preset {entry.preset!r} not in {model} PRESETS"


def test_unknown_name_suggests_close_names() -> None:
    with pytest.raises(ConfigError, match="r2tuning-qvhighlights"):
        pretrained.get_pretrained("r2tuning-qvhighlight")


def test_cache_dir_follows_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pretrained.CACHE_ENV, str(tmp_path / "cache"))
    entry = PRETRAINED["r2tuning-qvhighlights"]
    expected = tmp_path / "cache" / "checkpoints" / entry.name / entry.filename
    assert pretrained.checkpoint_path(entry) == expected


def test_download_verifies_and_places_atomically(tmp_path: Path) -> None:
    payload = b"weights" * 1000
    entry = _entry(tmp_path, payload)
    path = pretrained.download(entry, cache_dir=tmp_path / "cache", progress=False)
    assert path.read_bytes() == payload
    assert [p.name for p in path.parent.iterdir()] == ["fake.pth"]  # no leftover partial file
    # A second call uses the cache (the source may be gone).
    (tmp_path / "served" / "fake-00000000.pth").unlink()
    assert pretrained.download(entry, cache_dir=tmp_path / "cache", progress=False) == path


def test_hash_mismatch_deletes_partial_file(tmp_path: Path) -> None:
    entry = _entry(tmp_path, b"tampered", sha256="0" * 64)
    with pytest.raises(CheckpointError, match="sha256 .* expected sha256 0{64}") as info:
        pretrained.download(entry, cache_dir=tmp_path / "cache", progress=False)
    assert "place it at" in str(info.value)
    folder = tmp_path / "cache" / "checkpoints" / entry.name
    assert list(folder.iterdir()) == []


def test_prefix_only_entry_checks_prefix(tmp_path: Path) -> None:
    payload = b"released"
    prefix = hashlib.sha256(payload).hexdigest()[:8]
    good = _entry(tmp_path, payload, sha256=None, filename=f"r2_tuning_fake-{prefix}.pth")
    assert pretrained.download(good, cache_dir=tmp_path / "ok", progress=False).read_bytes() == payload
    bad = _entry(tmp_path, payload, sha256=None, filename="r2_tuning_fake-deadbeef.pth")
    with pytest.raises(CheckpointError, match="starting with deadbeef"):
        pretrained.download(bad, cache_dir=tmp_path / "bad", progress=False)


def test_size_mismatch_is_reported(tmp_path: Path) -> None:
    entry = _entry(tmp_path, b"short", size_bytes=999)
    with pytest.raises(CheckpointError, match="expected 999"):
        pretrained.download(entry, cache_dir=tmp_path / "cache", progress=False)


def test_offline_error_says_what_to_place_where(tmp_path: Path) -> None:
    entry = _entry(tmp_path, b"x", url=_closed_port_url())
    with pytest.raises(CheckpointError) as info:
        pretrained.download(entry, cache_dir=tmp_path / "cache", progress=False)
    message = str(info.value)
    target = tmp_path / "cache" / "checkpoints" / entry.name / entry.filename
    assert "could not download test-fake" in message
    assert entry.url in message and str(target) in message
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]  # no partial download left


def test_offline_via_monkeypatched_urlopen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise pretrained.URLError("no route to host")

    monkeypatch.setattr(pretrained, "urlopen", refuse)
    entry = PRETRAINED["r2tuning-qvhighlights"]
    with pytest.raises(CheckpointError, match="no route to host") as info:
        pretrained.download(entry.name, cache_dir=tmp_path, progress=False)
    assert entry.url in str(info.value) and entry.filename in str(info.value)


def test_manual_entry_explains_where_to_put_the_file(tmp_path: Path) -> None:
    entry = PRETRAINED["flashvtg-qvhighlights"]
    with pytest.raises(CheckpointError, match="cannot be downloaded automatically") as info:
        pretrained.download(entry.name, cache_dir=tmp_path, progress=False)
    assert entry.folder_url in str(info.value)
    assert str(pretrained.checkpoint_path(entry, tmp_path)) in str(info.value)
    # Once placed by hand, it is used (with a logged warning that no hash exists).
    target = pretrained.checkpoint_path(entry, tmp_path)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"ckpt")
    assert pretrained.download(entry.name, cache_dir=tmp_path, progress=False) == target


def test_corrupted_cached_file_is_reported_not_used(tmp_path: Path) -> None:
    entry = _entry(tmp_path, b"good")
    target = pretrained.checkpoint_path(entry, tmp_path / "cache")
    target.parent.mkdir(parents=True)
    target.write_bytes(b"bad!")
    with pytest.raises(CheckpointError, match="Delete it and download again"):
        pretrained.download(entry, cache_dir=tmp_path / "cache", progress=False)


def test_resolve_checkpoint_local_and_unknown(tmp_path: Path) -> None:
    own = tmp_path / "my_model.pth"
    own.write_bytes(b"mine")
    assert pretrained.resolve_checkpoint(own) == (own, None)
    released = tmp_path / PRETRAINED["r2tuning-tacos"].filename
    released.write_bytes(b"not the real file")
    with pytest.raises(CheckpointError, match="sha256"):
        pretrained.resolve_checkpoint(released)
    with pytest.raises(CheckpointError, match="neither an existing file"):
        pretrained.resolve_checkpoint(tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="is a folder"):
        pretrained.resolve_checkpoint(tmp_path)


def test_http_error_and_progress_bar_with_a_local_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    payload = b"0123456789" * 5000
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "ok.pth").write_bytes(payload)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "served"))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        good = _entry(tmp_path, payload, url=base + "ok.pth")
        path = pretrained.download(good, cache_dir=tmp_path / "cache", progress=True)
        assert path.read_bytes() == payload
        assert "fake.pth" in capsys.readouterr().err  # the tqdm bar names the file
        missing = _entry(tmp_path, payload, url=base + "missing.pth", name="test-missing")
        with pytest.raises(CheckpointError, match="HTTP 404"):
            pretrained.download(missing, cache_dir=tmp_path / "cache", progress=False)
    finally:
        server.shutdown()
        server.server_close()


ORACLE_R2 = shared_path("VTGKIT_ORACLE_R2", SHARED / "oracle" / "r2tuning" / "reference")
ORACLE_FLASHVTG = shared_path("VTGKIT_ORACLE_FLASHVTG", SHARED / "oracle" / "flashvtg" / "reference")


def test_load_pretrained_from_official_format_files(tmp_path: Path) -> None:
    import lzma
    import shutil

    r2_file = require_path(ORACLE_R2 / "r2_random.pth", "R2-Tuning oracle checkpoint")
    loaded = pretrained.load_pretrained(r2_file, model="r2tuning")
    assert loaded.model_name == "r2tuning" and loaded.entry is None and not loaded.model.training
    with pytest.raises(ConfigError, match="say which model"):
        pretrained.load_pretrained(r2_file)

    packed = require_path(ORACLE_FLASHVTG / "flashvtg_random.ckpt.xz", "FlashVTG oracle checkpoint")
    ckpt = tmp_path / "model_best.ckpt"
    ckpt.write_bytes(lzma.decompress(packed.read_bytes()))
    if (ORACLE_FLASHVTG / "opt.json").is_file():
        shutil.copy(ORACLE_FLASHVTG / "opt.json", tmp_path / "opt.json")
    loaded = pretrained.load_pretrained(ckpt, model="flashvtg")
    assert loaded.model_name == "flashvtg" and not loaded.model.training
    assert sum(p.numel() for p in loaded.model.parameters()) > 0


def test_load_pretrained_refuses_model_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("must not download")

    monkeypatch.setattr(pretrained, "urlopen", no_network)
    with pytest.raises(ConfigError, match="r2tuning-qvhighlights is a r2tuning checkpoint, not flashvtg"):
        pretrained.load_pretrained("r2tuning-qvhighlights", model="flashvtg", cache_dir=tmp_path)
