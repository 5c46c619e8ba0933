"""Output folders written atomically and guarded against a second writer.

A temporary sibling `.OUT.partial-PID` is filled, then moved into place; a failed or interrupted
run leaves no partial OUT and never touches a previous good OUT. While a process writes OUT it
holds an exclusive lock on the sibling `.OUT.lock`, so a second writer fails at once; leftovers
of processes that were killed (`.OUT.partial-PID`, `.OUT.old-PID`) are removed by the next
writer, which says so. A full disk or a read-only folder becomes one clear error.

Nothing a user owns is deleted or changed: every path the command line names (except OUT) is
declared an input (`declare_inputs`, called by the CLI for every option before a command runs),
and every output, folder or file, is refused when it is, holds or lies inside one of them. An OUT
that is a symbolic link is written through: the folder it points to is replaced, the link stays.
Temporary files are created exclusively under unpredictable names, so a link planted at a
temporary name is never followed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import signal
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import UserError, check_interrupted

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")  # image files that data and reference folders hold

# Every output this process claimed, in order, and those it then replaced: the CLI names them
# when a run is interrupted.
CLAIMED_OUTPUTS: list[Path] = []
WRITTEN_OUTPUTS: list[Path] = []

# Every existing path the command line named as an input (cli/__init__.py declares them before
# the command runs): no output may be, hold or lie inside one of them.
DECLARED_INPUTS: list[Path] = []

_held_locks: dict[str, list[int]] = {}  # lock path -> [fd, depth]: the lock is re-entrant in one process


def notice(text: str) -> None:
    """One plain line on stderr for something the user should know but that is no error."""
    print(f"note: {text}", file=sys.stderr, flush=True)


def os_error(exc: OSError, out: Path) -> UserError:
    """A filesystem failure while writing `out` as one line naming the file and the cause."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        src, dst, why = exc.args[0][0]
        return UserError(f"could not write {out}: {why} (in {dst})")
    where = getattr(exc, "filename2", None) or exc.filename or out  # copies name the destination second
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return UserError(f"expected free space to write {out}, got a full disk (in {where}); "
                         f"{out} was not changed")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return UserError(f"expected a writable folder for {out}, got \"{exc.strerror}\" (in {where})")
    return UserError(f"could not write {out}: {exc.strerror or exc} (in {where})")


def declare_inputs(paths: Iterable[str | Path | None]) -> None:
    """Record paths the user gave as inputs; every later output is checked against them
    (`check_separate`). Names of nothing (hub ids, data set names like shapes:3) are skipped; a
    FILE:SUFFIX value (--lora FILE:SCALE) declares FILE."""
    for item in paths:
        if item is None or str(item) == "":
            continue
        path = Path(item)
        if not _exists(path) and ":" in str(item):
            path = Path(str(item).rpartition(":")[0])
        if _exists(path) and path not in DECLARED_INPUTS:
            DECLARED_INPUTS.append(path)


def _exists(path: Path) -> bool:
    try:
        return path.exists() or path.is_symlink()
    except (OSError, ValueError):  # a name too long, a NUL byte, a symlink loop
        return False


def _resolved(path: Path) -> Path:
    try:
        return Path(os.path.abspath(path)).resolve()
    except (OSError, RuntimeError):  # a symlink loop: compare the path as written
        return Path(os.path.abspath(path))


def recorded_path(text: str) -> str:
    """How an input is recorded for later commands (pipeline.json source.model, LoRA paths): an
    existing local path as an absolute path, so `verify` finds it from any folder; anything
    else (a hub id) as typed."""
    path = Path(text)
    return os.path.abspath(path) if _exists(path) else text


def check_separate(out: Path, inputs: Iterable[str | Path | None] = (), what: str = "an output folder") -> None:
    """Refuse an OUT that is an input, lies inside one, or contains one (replacing it would delete
    it): `inputs` and every path declared with `declare_inputs`."""
    target = _resolved(Path(out))
    for item in [*inputs, *DECLARED_INPUTS]:
        if item is None or not _exists(Path(item)):
            continue  # a hub id or a missing path: the loader reports it
        source = _resolved(Path(item))
        if target == source or source in target.parents or target in source.parents:
            relation = ("is" if target == source else "lies inside" if source in target.parents else "contains")
            raise UserError(f"expected {what} outside the input {item}, got {out}, which {relation} it")


def writable_parent(out: Path) -> None:
    """Refuse, before any work, an output file whose (nearest existing) parent folder cannot be written."""
    parent = Path(os.path.abspath(out)).parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK):  # a read-only mount fails this even for root
        raise UserError(f"expected a writable folder for {out}, got a read-only or inaccessible folder (in {parent})")


def claim_file(out: Path) -> None:
    """Record an output file that is written atomically at the end (write_png), so an interrupted
    run names it as untouched). Refuses a file that is or lies inside an input."""
    check_separate(out, what="an output file")
    path = Path(os.path.abspath(out))
    if path not in CLAIMED_OUTPUTS:
        CLAIMED_OUTPUTS.append(path)


def check_target(out: Path, overwrite: bool) -> None:
    """OUT may be written: absent, or a folder and `overwrite` is set."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"expected {out} to be a folder, got a file")
    if out.exists() and not overwrite:
        raise UserError(f"output folder {out} already exists; pass --overwrite to replace it")


@contextmanager
def claim_output(out: Path, overwrite: bool = False, inputs: Iterable[str | Path] = ()) -> Iterator[None]:
    """Everything about OUT that can be checked before any work, then hold its lock.

    Refuses OUT when it is (or holds, or lies in) one of `inputs`, exists without `overwrite`,
    is being written by another process or cannot be written; removes leftovers of killed runs.
    `atomic_directory` inside the block re-enters the same lock.
    """
    out = Path(out)
    check_separate(out, inputs)
    check_target(out, overwrite)
    with output_lock(out):
        yield


def real_output(out: Path) -> Path:
    """The absolute path written for OUT: a symbolic link at OUT is followed (the folder it points
    to is replaced, the link stays), so the hidden siblings lie beside the real folder."""
    out = Path(os.path.abspath(out))
    if out.is_symlink():
        return Path(os.path.realpath(out))
    return out


@contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold the exclusive lock on `.OUT.lock` (re-entrant in one process); another holder fails at once.
    OUT that is, holds or lies inside a declared input is refused first."""
    check_separate(out)
    out = real_output(out)
    lock = out.parent / f".{out.name}.lock"
    key = str(lock)
    if key not in _held_locks:
        _held_locks[key] = [_acquire(lock, out), 0]
        if out not in CLAIMED_OUTPUTS:
            CLAIMED_OUTPUTS.append(out)
        _remove_leftovers(out)
    _held_locks[key][1] += 1
    try:
        yield
    finally:
        entry = _held_locks[key]
        entry[1] -= 1
        if entry[1] == 0:
            del _held_locks[key]
            try:
                os.unlink(lock)  # while still holding it: a waiting opener sees a new inode and retries
            except OSError:
                pass
            os.close(entry[0])


def _acquire(lock: Path, out: Path) -> int:
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(exc, out) from None
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)  # never through a link
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UserError(f"expected a lock file of our own, got a symbolic link (in {lock}); "
                                f"remove it if no other process writes {out}") from None
            raise os_error(exc, out) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UserError(f"expected no other process writing {out}, got process {holder} holding "
                            f"its lock (in {lock})") from None
        try:
            current = os.stat(lock).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:  # not unlinked by a previous holder meanwhile
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)


def _process_gone(pid: int) -> bool:
    """True when no process `pid` runs (a zombie counts as gone: it writes nothing more)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("Z", "X")


def _remove_leftovers(out: Path) -> None:
    """Leftovers of killed writers of `out`: partial folders go; an old OUT caught mid-swap comes back."""
    pattern = re.compile(rf"{re.escape('.' + out.name)}\.(partial|old)-(\d+)")
    try:
        entries = sorted(p for p in out.parent.iterdir() if pattern.fullmatch(p.name))
    except OSError:
        return
    for entry in entries:
        kind, pid = pattern.fullmatch(entry.name).groups()
        if int(pid) == os.getpid() or not _process_gone(int(pid)):
            continue
        if kind == "old" and not out.exists():
            os.replace(entry, out)
            notice(f"restored {out} from {entry.name}, left by process {pid} that was stopped while replacing it")
            continue
        _remove(entry)
        if _exists(entry):
            notice(f"could not remove {entry}, left by process {pid} that is no longer running")
        else:
            notice(f"removed {entry}, left by process {pid} that is no longer running")


def _remove(path: Path) -> None:
    """Remove a leftover of ours: a folder's tree, or a file or link itself (never what a link points to)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except OSError:
            pass


@contextmanager
def atomic_directory(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces `out`, on any failure it is removed."""
    out = Path(out)
    with output_lock(out):
        check_target(out, overwrite)
        out = real_output(out)
        tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            yield tmp
            check_target(out, overwrite)
            check_interrupted()  # a signal whose exception third-party code swallowed stops here
            move_into_place(tmp, out)
        except OSError as exc:
            raise os_error(exc, out) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _file_mode() -> int:
    """The mode open() gives a new file (0o666 less the umask); mkstemp's files start at 0o600."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """The one way an output file is written: yield a new, empty temporary sibling `.NAME.XXXXXXXX.partial`
    (created exclusively under an unpredictable name, so a link or file already there is never
    followed or reused) to fill; on success it gets a new file's mode and replaces `path` in one
    os.replace, on any failure it is removed and a previous `path` stays as it was. A file that is
    or lies inside an input is refused; the parent folder is created."""
    path = Path(path)
    check_separate(path, what="an output file")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
        if Path(os.path.abspath(path)) in CLAIMED_OUTPUTS:
            WRITTEN_OUTPUTS.append(Path(os.path.abspath(path)))
    finally:
        tmp.unlink(missing_ok=True)


TEMP_PREFIX = "snapfusion-coreml-"  # + PID + "-" + random: this process's folder in the system temp folder


@contextmanager
def process_temp_folder() -> Iterator[Path]:
    """Route temporary files (coremltools writes each package to the system temp folder first)
    into a folder of this process, removed at the end; folders of processes that are gone
    (stopped by SIGKILL, which no cleanup survives) are removed first, with a note."""
    system = Path(tempfile.gettempdir())
    pattern = re.compile(rf"{re.escape(TEMP_PREFIX)}(\d+)-\w+")
    try:
        stale = [p for p in system.iterdir() if pattern.fullmatch(p.name)]
    except OSError:
        stale = []
    for entry in stale:
        pid = int(pattern.fullmatch(entry.name).group(1))
        try:
            mine = entry.lstat().st_uid == os.getuid() and entry.is_dir() and not entry.is_symlink()
        except OSError:
            continue
        if mine and pid != os.getpid() and _process_gone(pid):
            shutil.rmtree(entry, ignore_errors=True)
            notice(f"removed {entry}, temporary files of process {pid} that is no longer running")
    try:
        folder = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=system))
    except OSError:  # no writable temp folder: leave temporaries where they go
        yield system
        return
    previous = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield folder
    finally:
        tempfile.tempdir = previous
        shutil.rmtree(folder, ignore_errors=True)


def write_json(path: Path, data: Any) -> None:
    """Write `data` as indented JSON, atomically (atomic_file)."""
    write_text(path, json.dumps(data, indent=2) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write `text` as UTF-8, atomically (atomic_file)."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def move_into_place(tmp: Path, out: Path) -> None:
    """Replace folder `out` by the complete folder `tmp` (the old one, if any, is removed after).

    SIGINT and SIGTERM wait while the two renames run, so only SIGKILL can stop this between
    them; the next writer then restores the old OUT (see `_remove_leftovers`).
    """
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    signals = {signal.SIGINT, signal.SIGTERM}
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        WRITTEN_OUTPUTS.append(Path(os.path.abspath(out)))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    _remove(old)


def write_png(path: Path, image) -> None:
    """Write an (H, W, 3) uint8 array as a PNG, atomically (atomic_file)."""
    from PIL import Image

    with atomic_file(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
