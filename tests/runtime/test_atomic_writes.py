"""Outputs are written atomically and durably, never replace what another process wrote, and honour the umask."""

import os
import stat

import pytest

from seq2seq_edge.runtime.fsutil import OutputExistsError, atomic_directory, write_bytes_atomic


def _bundle(folder, text: str) -> None:
    (folder / "manifest.json").write_text(text)
    (folder / "sub").mkdir()
    (folder / "sub" / "graph.onnx").write_bytes(b"x")


def test_an_output_that_appears_meanwhile_is_left_alone(tmp_path):
    out = tmp_path / "bundle"
    with pytest.raises(OutputExistsError, match=r"^.*bundle was created by someone else while this output was being "
                                                r"written; it was left as it is"):
        with atomic_directory(out) as tmp:
            _bundle(tmp, "ours")
            out.mkdir()
            (out / "theirs.txt").write_text("theirs")  # another process, mid-export
    assert [p.name for p in out.iterdir()] == ["theirs.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no temporary folder left


def test_a_failed_swap_puts_the_old_output_back(tmp_path, monkeypatch):
    out = tmp_path / "bundle"
    out.mkdir()
    _bundle(out, "old")
    real_rename, calls = os.rename, []

    def flaky(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # old -> backup worked; new -> out fails (disk full, power, ...)
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", flaky)
    with pytest.raises(OSError, match=r"No space left on device"):
        with atomic_directory(out, force=True) as tmp:
            _bundle(tmp, "new")
    assert (out / "manifest.json").read_text() == "old" and (out / "sub" / "graph.onnx").read_bytes() == b"x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no hidden .bundle.old-* or .tmp-* left


def test_a_forced_swap_replaces_the_output(tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    _bundle(out, "old")
    with atomic_directory(out, force=True) as tmp:
        _bundle(tmp, "new")
    assert (out / "manifest.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_everything_is_synced_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_rename = os.fsync, os.rename
    monkeypatch.setattr(os, "fsync", lambda fd: events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
                        or real_fsync(fd))
    monkeypatch.setattr(os, "rename", lambda a, b: events.append(("rename", str(b))) or real_rename(a, b))
    out = tmp_path / "bundle"
    with atomic_directory(out) as tmp:
        _bundle(tmp, "new")
    rename = events.index(("rename", str(out)))
    synced = {os.path.relpath(path, tmp) for kind, path in events[:rename] if kind == "fsync"}
    assert synced == {"manifest.json", "sub/graph.onnx", "sub", "."}
    assert events[rename + 1] == ("fsync", str(tmp_path))  # and the directory entry itself afterwards


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                                        (0o002, 0o664, 0o775)])
def test_permissions_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        with atomic_directory(tmp_path / "bundle") as tmp:
            _bundle(tmp, "x")
        write_bytes_atomic(tmp_path / "out.npy", b"data")
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "bundle") == dir_mode and mode(tmp_path / "bundle" / "sub") == dir_mode
    assert mode(tmp_path / "bundle" / "manifest.json") == file_mode
    assert mode(tmp_path / "out.npy") == file_mode


def test_a_file_that_appears_meanwhile_is_left_alone(tmp_path, monkeypatch):
    out = tmp_path / "out.npy"
    real_fsync = os.fsync

    def fsync_and_race(fd):
        real_fsync(fd)
        if not out.exists():
            out.write_text("theirs")  # another process wins the race while ours is being synced

    monkeypatch.setattr(os, "fsync", fsync_and_race)
    with pytest.raises(OutputExistsError, match=r"^.*out.npy was created by someone else"):
        write_bytes_atomic(out, b"ours")
    assert out.read_text() == "theirs" and sorted(p.name for p in tmp_path.iterdir()) == ["out.npy"]


def test_outputs_under_a_file_are_refused(tmp_path):
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(OutputExistsError, match=r"^.*afile/b: .*afile is a file, not a directory; choose another"):
        with atomic_directory(tmp_path / "afile" / "b"):
            pass
    assert (tmp_path / "afile").read_text() == "mine"


def test_publishing_never_replaces_a_file_another_writer_created_meanwhile(tmp_path, monkeypatch):
    """Issue 31: publish_file checked that the output was absent, then renamed onto it, so a writer arriving
    between the two was replaced (6 times in 1,500 races). It now links, which fails if the output exists.
    Here every check says the output is absent, as a check made just before the other writer would."""
    from pathlib import Path

    from seq2seq_edge.runtime.fsutil import OutputExistsError, publish_file

    out, tmp = tmp_path / "out.jsonl", tmp_path / ".tmp-out"
    tmp.write_text("mine\n")
    out.write_text("theirs\n")  # the other writer published in the window
    real_exists = Path.exists
    monkeypatch.setattr(Path, "exists", lambda self, *a, **k: False if self == out else real_exists(self, *a, **k))
    with pytest.raises(OutputExistsError, match="was created by someone else"):
        publish_file(tmp, out, force=False)
    assert out.read_text() == "theirs\n" and tmp.read_text() == "mine\n"


def _race(args):
    import os
    from pathlib import Path

    from seq2seq_edge.runtime.fsutil import OutputExistsError, publish_file

    folder, round_, me = args
    tmp = Path(folder) / f".tmp-{round_}-{me}"
    tmp.write_text(f"{me}\n")
    try:
        publish_file(tmp, Path(folder) / f"out{round_}", force=False)
        return me
    except OutputExistsError:
        os.unlink(tmp)
        return None


def test_racing_writers_publish_exactly_once(tmp_path):
    """Four processes publish to each of 200 paths at once: each path gets exactly one writer's file, the one
    that was told it won."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(4) as pool:
        winners = {}
        for round_ in range(200):
            results = list(pool.map(_race, [(str(tmp_path), round_, me) for me in range(4)]))
            won = [r for r in results if r is not None]
            assert len(won) == 1, (round_, results)
            winners[round_] = won[0]
    assert all((tmp_path / f"out{r}").read_text() == f"{w}\n" for r, w in winners.items())
    assert not list(tmp_path.glob(".tmp-*"))
