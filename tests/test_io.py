"""genads.io: a write appears whole or not at all, and a failed write loses nothing stored."""

from __future__ import annotations

import stat

import pytest

from genads.io import atomic_write, atomic_write_text, replace_dir


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = atomic_write_text(tmp_path / "a.json", "old")

    def broken(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_mode_is_the_umask_default_or_the_one_asked_for(tmp_path):
    plain = atomic_write_text(tmp_path / "plain", "x")
    secret = atomic_write_text(tmp_path / "secret", "x", mode=0o600)
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(plain.stat().st_mode) & 0o044  # readable by others under the usual umask, unlike mkstemp's 0600


def test_replace_dir_swaps_and_puts_the_old_folder_back_on_failure(tmp_path, monkeypatch):
    old, new = tmp_path / "bundle", tmp_path / "new"
    old.mkdir()
    (old / "keep").write_text("old")
    new.mkdir()
    (new / "keep").write_text("new")
    real_rename = type(new).rename

    def failing(self, target):
        if self == new:
            raise OSError("rename failed")
        return real_rename(self, target)

    monkeypatch.setattr(type(new), "rename", failing)
    with pytest.raises(OSError, match="rename failed"):
        replace_dir(new, old)
    monkeypatch.undo()
    assert (old / "keep").read_text() == "old"
    replace_dir(new, old)
    assert (old / "keep").read_text() == "new" and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
