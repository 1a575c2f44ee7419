"""Write outputs atomically, and never destroy what the user did not hand us: the one place of the ``-o`` rules.

Destinations (``-o``):

- ``-``: stdout; a checkpoint is refused when stdout is a terminal;
- a special file: a character device (``/dev/null``), a FIFO, or a descriptor path (``/dev/stdout``,
  ``/dev/fd/N``): written through as a stream, like stdout, never renamed or replaced (terminals, block
  devices and sockets are refused);
- a path ending in ``/``, an existing folder, or a new name without a suffix: a Hugging Face folder with
  ``model.safetensors`` (or ``model-0000i-of-0000n.safetensors`` and an index with ``shard_size``), the
  support files (config, generation config, processor, tokenizer) of the input it was made from, and a
  model card ``README.md`` built from the provenance metadata (:mod:`asrmerge.io.card`);
- any other path, and any existing regular file (with a suffix or not): one file;
- a symbolic link: the rules apply to what it points to, which is written in its own folder; the link stays.

What may be replaced: a folder that is empty, or that holds nothing but the files of a model folder
(weights, index, :data:`asrmerge.io.hf_files.SUPPORT_FILES`, ``README.md``) with weights that carry
asrmerge's metadata (``asrmerge.version``), that is, an earlier output; a file that is empty or an earlier
output (safetensors with asrmerge's metadata, a ``.pt`` written by ``convert``, a transcript whose every
record has transcribe's ``model`` field). Anything else is refused before any work (exit 2), unless
``force``: then our files replace theirs of the same name, stale weight files of ours are removed, and every
other file and folder stays untouched. A destination that is one of the inputs (holds one, or is a file of
an input folder), the current folder or one above it, or whose folder is not writable is refused always.

Files are written under a temporary name beside the destination, ``.NAME.asrmerge-tmp-HOST-PID-RANDOM``,
flushed to disk, then renamed into place; a folder is assembled under a temporary name and exchanged with
the old one in one step (or, with ``force``, its files are renamed in one by one). A failure, a full disk
or Ctrl-C removes the temporary and leaves the old destination (or none): never a truncated output.
Temporaries left by a killed run (kill -9) are removed by the next run to the same destination
(:func:`sweep_temporaries`), on the same host only, and only those whose process is gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import re
import secrets
import shutil
import socket
import stat
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO

from asrmerge.errors import AsrmergeError, InputError, UsageError
from asrmerge.io.hf_files import SUPPORT_FILES
from asrmerge.io.tensors import TensorInfo, all_finite, cli_name, torch_dtype

if TYPE_CHECKING:
    import torch

    from asrmerge.io.safetensors import StreamWriter

TERMINAL_HINT = "use -o FILE or a pipe"
TMP_TAG = ".asrmerge-tmp-"
INDEX_FILE = "model.safetensors.index.json"
MODEL_CARD = "README.md"
CHECKPOINT = "checkpoint"  # what a destination receives: a checkpoint (file or folder) ...
TRANSCRIPT = "transcript"  # ... or transcribe's JSON lines (a file)
_SHARD = re.compile(r"model-\d+-of-\d+\.safetensors\Z")
_FD_PATH = re.compile(r"/(?:dev/fd|proc/(?:self|thread-self|\d+)/fd)/(\d+)\Z")
_WRITE_HINT = "free some disk space or choose another -o"


def is_weight_file(name: str) -> bool:
    """``model.safetensors``, a ``model-0000i-of-0000n.safetensors`` shard, or their index."""
    return name in ("model.safetensors", INDEX_FILE) or bool(_SHARD.match(name))


def is_model_folder_file(name: str) -> bool:
    """Whether a file of this name belongs to the model folders asrmerge writes."""
    return is_weight_file(name) or name in SUPPORT_FILES or name == MODEL_CARD


@dataclass(frozen=True)
class Destination:
    """Where ``-o`` writes, once checked.

    Attributes:
        text: the path as given.
        kind: ``stdout``, ``stream`` (a special file), ``file`` or ``folder``.
        path: the absolute path written (symbolic links resolved); ``None`` for stdout.
        fd: for ``/dev/stdout``, ``/dev/fd/N``: the open descriptor written through.
        mode: ``new`` (nothing there), ``replace`` (empty, or an earlier output) or ``force`` (merged into,
            or replaced, on ``--force``).
    """

    text: str
    kind: str
    path: Path | None = None
    fd: int | None = None
    mode: str = "new"


def _fd_number(dest: str) -> int | None:
    """The descriptor a path such as ``/dev/stdout`` or ``/dev/fd/3`` names (through its links), else None."""
    path = os.path.abspath(dest)
    for _ in range(8):
        if path in ("/dev/stdout", "/dev/stderr", "/dev/stdin"):
            return {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}[path]
        m = _FD_PATH.match(path)
        if m and (path.startswith("/dev/") or "/self/" in path or "/thread-self/" in path
                  or path.startswith(f"/proc/{os.getpid()}/")):
            return int(m.group(1))
        if not os.path.islink(path):
            return None
        path = os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(path)))
    return None


def _is_terminal(st: os.stat_result) -> bool:
    """A terminal device, by its major number (Linux: 4 ttyN/ttyS, 5 tty/console/ptmx, 136-143 pts); the
    device itself is not opened, which may act (a watchdog starts when opened)."""
    major = os.major(st.st_rdev)
    return major in (4, 5) or 136 <= major <= 143


def check_destination(dest: str, *, force: bool = False, inputs: Iterable[str] = (),
                      owner: str = CHECKPOINT) -> Destination:
    """Check ``-o dest`` before any work (see the module docstring for the rules).

    Args:
        dest: the path as given, or ``-``.
        force: allow replacing what is not an earlier output (``--force``).
        inputs: the command's inputs (paths or ``-``), which the destination must not be or overwrite.
        owner: ``checkpoint`` (a file or folder) or ``transcript`` (a JSON lines file).
    Returns:
        The checked destination.
    Raises:
        UsageError: the destination may not be written, with what is wrong and what to do.
    """
    if dest == "-":
        if owner == CHECKPOINT and sys.stdout.isatty():
            raise UsageError("refusing to write a checkpoint to a terminal", subject="-o -", hint=TERMINAL_HINT)
        return Destination(dest, "stdout")
    if not dest:
        raise UsageError("is empty", subject="-o", hint="give a path, or - for stdout")
    fd = _fd_number(dest)
    if fd is not None:
        if not _fd_open(fd):
            raise UsageError(f"descriptor {fd} is not open", subject=dest, hint="open it in the shell, or use -o FILE")
        if owner == CHECKPOINT and os.isatty(fd):
            raise UsageError("is a terminal; refusing to write a checkpoint to it", subject=dest, hint=TERMINAL_HINT)
        return Destination(dest, "stream", Path(dest), fd)
    want_folder = dest.endswith(("/", os.sep))
    try:
        st: os.stat_result | None = os.stat(dest)
    except FileNotFoundError:
        st = None  # nothing there (or a dangling link: its target is created)
    except NotADirectoryError:
        if want_folder and os.path.isfile(dest.rstrip("/" + os.sep)):
            raise UsageError("is a file, not a folder", subject=dest, hint="choose another -o for a model folder") from None
        raise UsageError("a folder on its path is a file", subject=dest, hint="check the path") from None
    except OSError as e:
        raise UsageError(f"cannot use it ({e.strerror})", subject=dest, hint="check the path") from None
    target = Path(os.path.realpath(dest))
    if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            if want_folder:
                raise UsageError("is a device or a pipe, not a folder", subject=dest, hint="choose another -o")
            if owner == CHECKPOINT and stat.S_ISCHR(st.st_mode) and _is_terminal(st):
                raise UsageError("is a terminal; refusing to write a checkpoint to it", subject=dest, hint=TERMINAL_HINT)
            return Destination(dest, "stream", target)
        what = "a block device" if stat.S_ISBLK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "a special file"
        raise UsageError(f"is {what}; asrmerge writes files, folders, pipes and character devices only", subject=dest,
                         hint="choose another -o")
    if st is None:
        folder = owner == CHECKPOINT and (want_folder or not target.suffix)
        kind = "folder" if folder else "file"
    elif stat.S_ISDIR(st.st_mode):
        if owner != CHECKPOINT:
            raise UsageError("is a folder", subject=dest, hint="give a file name, e.g. -o hyp.jsonl")
        kind = "folder"
    else:
        if want_folder:
            raise UsageError("is a file, not a folder", subject=dest, hint="choose another -o for a model folder")
        kind = "file"
    parent = target.parent
    if not parent.is_dir():
        raise UsageError(f"folder {parent} does not exist", subject=dest, hint="create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"folder {parent} is not writable", subject=dest,
                         hint="choose a folder you can write to (outputs are written beside their destination first)")
    _check_not_input(target, inputs, dest)
    try:
        cwd: Path | None = Path.cwd().resolve()
    except OSError:  # the current folder was removed: nothing to protect
        cwd = None
    if cwd is not None and (target == cwd or target in cwd.parents):
        where = "is the current folder" if target == cwd else "holds the current folder"
        raise UsageError(f"{where}; refusing to replace it", subject=dest, hint="choose a new or empty folder elsewhere")
    if st is None:
        return Destination(dest, kind, target)
    foreign = _foreign(target, kind, owner)
    if not foreign:
        return Destination(dest, kind, target, mode="replace")
    if not force:
        hint = ("choose a new or empty folder, or --force (writes the model's files and keeps every other file)"
                if kind == "folder" else "choose a new file name, or --force to replace it")
        raise UsageError(f"exists and {foreign}; refusing to replace it", subject=dest, hint=hint)
    return Destination(dest, kind, target, mode="force")


def _fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def _check_not_input(target: Path, inputs: Iterable[str], dest: str) -> None:
    for spec in inputs:
        if not spec or spec == "-" or spec.startswith("packaged:"):
            continue
        inp = Path(os.path.realpath(spec))
        if inp == target:
            raise UsageError(f"is the input {spec}", subject=dest, hint="write the output somewhere else")
        if target in inp.parents:
            raise UsageError(f"holds the input {spec}", subject=dest, hint="write the output somewhere else")
        if target.parent == inp and inp.is_dir() and is_model_folder_file(target.name):
            raise UsageError(f"is a file of the input {spec}", subject=dest, hint="write the output somewhere else")


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:3])
    return shown + (f" and {len(items) - 3} more" if len(items) > 3 else "")


def _foreign(target: Path, kind: str, owner: str) -> str:
    """What in an existing destination asrmerge did not write, as a phrase ('holds keep, src/ that asrmerge did
    not write'), or '' when it is empty or an earlier output."""
    if kind == "folder":
        try:
            entries = sorted(os.scandir(target), key=lambda e: e.name)
        except OSError as err:
            raise UsageError(f"cannot list it ({err.strerror})", subject=str(target), hint="check its permissions") from None
        if not entries:
            return ""
        foreign: list[str] = []
        weights: list[str] = []
        for entry in entries:
            if not is_model_folder_file(entry.name) or not entry.is_file(follow_symlinks=False):
                foreign.append(entry.name + ("/" if entry.is_dir(follow_symlinks=False) else ""))
            elif is_weight_file(entry.name) and entry.name != INDEX_FILE:
                weights.append(entry.name)
        foreign += [w for w in weights if not is_our_checkpoint(target / w)]
        if foreign:
            return f"holds {_names(foreign)} that asrmerge did not write"
        if not weights:
            return f"holds {_names([entry.name for entry in entries])} but no weights from asrmerge"
        return ""
    if os.path.getsize(target) == 0:
        return ""
    if owner == TRANSCRIPT:
        problem = transcript_problem(target)
        return f"is not an earlier asrmerge output ({problem})" if problem else ""
    return "" if is_our_checkpoint(target) else "is not an earlier asrmerge output (no asrmerge metadata)"


def is_our_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a safetensors file (or openai-whisper ``.pt``) that asrmerge wrote."""
    if path.suffix in (".pt", ".pth"):
        return _is_our_pt(path)
    from asrmerge.io.safetensors import SafetensorsFile

    try:
        f = SafetensorsFile(path)
    except (AsrmergeError, OSError):
        return False
    try:
        return "asrmerge.version" in f.metadata
    finally:
        f.close()


def _is_our_pt(path: Path) -> bool:
    """A ``.pt`` that ``convert`` wrote: a torch zip whose pickle names ``asrmerge.version`` (read, never run)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            pkl = next((i for i in z.infolist() if i.filename.endswith("/data.pkl")), None)
            if pkl is None or pkl.file_size > 1 << 24:
                return False
            return b"asrmerge.version" in z.read(pkl)
    except (OSError, zipfile.BadZipFile, ValueError, RuntimeError, NotImplementedError):
        return False


def transcript_problem(path: Path) -> str:
    """Why ``path`` is not an earlier ``transcribe`` output ('' when it is): every record has ``model``."""
    try:
        f = open(path, "rb")
    except OSError as e:
        return e.strerror or str(e)
    with f:
        no = 0
        pending = ""
        for raw in f:
            no += 1
            if pending:
                return pending
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except (ValueError, RecursionError):
                # a last line cut short by a killed job is allowed; anything else is not a transcript
                pending = f"line {no} is not JSON"
                if raw.endswith(b"\n"):
                    return pending
                continue
            if not isinstance(rec, dict) or "model" not in rec:
                return f"line {no} is not a transcribe record"
    return ""


# -- temporaries -------------------------------------------------------------------------------------------


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname() or "host")


def temporary_name(target: Path) -> Path:
    """``.NAME.asrmerge-tmp-HOST-PID-RANDOM`` beside ``target``."""
    return target.parent / f".{target.name}{TMP_TAG}{_host()}-{os.getpid()}-{secrets.token_hex(4)}"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def sweep_temporaries(dest: str) -> list[str]:
    """Remove the temporaries a killed run left beside ``dest``: this host's, whose process is gone.

    Temporaries of other hosts (a shared file system under Slurm) and of live processes are left alone.

    Returns:
        The names removed.
    """
    if dest in ("", "-") or _fd_number(dest) is not None:
        return []
    target = Path(os.path.realpath(dest))
    prefix = f".{target.name}{TMP_TAG}{_host()}-"
    try:
        entries = [e.name for e in os.scandir(target.parent) if e.name.startswith(prefix)]
    except OSError:
        return []
    removed = []
    for name in sorted(entries):
        pid, _, token = name[len(prefix):].partition("-")
        if not pid.isdigit() or not re.fullmatch(r"[0-9a-f]{8}", token) or _alive(int(pid)):
            continue
        try:
            _remove(target.parent / name)
        except OSError:
            continue
        removed.append(name)
    return removed


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd = -100
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _swap_in(tmp: Path, dest: Path) -> None:
    """Put the folder ``tmp`` at ``dest``, replacing an earlier output there in one step; ``tmp`` is gone after."""
    for _ in range(5):
        if not dest.exists():
            try:
                os.rename(tmp, dest)
                return
            except OSError as e:
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                continue  # another writer got there first: replace its output
        if _exchange(tmp, dest):
            _remove(tmp)  # now the old folder
            return
        old = temporary_name(dest)  # no exchange on this system: two renames
        try:
            os.rename(dest, old)
        except FileNotFoundError:
            continue
        try:
            os.rename(tmp, dest)
        except OSError:
            os.rename(old, dest)
            raise
        _remove(old)
        return
    raise OSError(errno.EBUSY, "other processes keep writing it", str(dest))


# -- checkpoints -------------------------------------------------------------------------------------------


def output_kind(dest: str) -> str:
    """``stdout``, ``stream``, ``folder`` or ``file``: what ``-o dest`` writes (see the module docstring)."""
    if dest == "-":
        return "stdout"
    if _fd_number(dest) is not None:
        return "stream"
    try:
        st = os.stat(dest)
    except OSError:
        return "folder" if dest.endswith(("/", os.sep)) or not Path(dest).suffix else "file"
    if stat.S_ISDIR(st.st_mode):
        return "folder"
    return "file" if stat.S_ISREG(st.st_mode) else "stream"


def cast_finite(tensor: torch.Tensor, dtype: str, name: str, dest: str, *, streamed: bool = False) -> torch.Tensor:
    """``tensor`` cast to ``dtype`` (safetensors code), or an :class:`InputError` if a value is not finite then.

    Every tensor asrmerge writes passes here: an overflow of fp16 (1e6 becomes Inf) is an error naming the
    tensor and the dtype, never a silent Inf in the output.

    Args:
        streamed: the output goes to a stream (stdout), whose bytes so far cannot be taken back: the message
            says it is cut short (readers refuse it as truncated) rather than that nothing was written.
    """
    out = tensor.to(torch_dtype(dtype))
    if all_finite(out):
        return out
    done = "the stream is cut short" if streamed else "nothing written"
    if all_finite(tensor):
        raise InputError(f"tensor {name} overflows {cli_name(dtype)} (values beyond its range become Inf); {done}",
                         subject=dest, hint="choose a wider --dtype (fp32, bf16) or smaller factors")
    raise InputError(f"tensor {name} has NaN or Inf values in {cli_name(dtype)}; {done}", subject=dest,
                     hint="check the inputs and the factors")


def _shard(infos: list[TensorInfo], shard_size: int | None) -> list[list[TensorInfo]]:
    if not shard_size:
        return [infos]
    shards: list[list[TensorInfo]] = [[]]
    size = 0
    for info in infos:
        if shards[-1] and size + info.nbytes > shard_size:
            shards.append([])
            size = 0
        shards[-1].append(info)
        size += info.nbytes
    return shards


def _open_stream(dest: Destination, text: bool = False) -> IO[bytes] | IO[str]:
    if dest.fd is not None:
        fd = os.dup(dest.fd)
    else:
        assert dest.path is not None
        fd = os.open(dest.path, os.O_WRONLY)  # a device or FIFO: never created, truncated or renamed
    return os.fdopen(fd, "w", encoding="utf-8") if text else os.fdopen(fd, "wb")


class CheckpointWriter:
    """Stream tensors into ``dest``; commit on success, remove everything on failure.

    Use as a context manager; call :meth:`write` once per tensor in the order of ``infos`` (the dtypes
    in ``infos`` are the output dtypes: tensors are cast to them, rounding to nearest even, and a value
    that is not finite after the cast is an error naming the tensor: nothing is written).

    Args:
        dest: ``-``, a file path or a folder path (see the module docstring).
        infos: every output tensor, in write order, with its output dtype.
        metadata: safetensors ``__metadata__`` (strings); ``format: pt`` is added for transformers.
        shard_size: largest shard in bytes, for folders; ``None`` writes one ``model.safetensors``.
        support: files to place beside the weights in a folder (config, tokenizer, ...).
        force: replace what is not an earlier output (``--force``; never removes other files).
        inputs: the command's inputs, which the destination must not overwrite.
    """

    def __init__(self, dest: str, infos: list[TensorInfo], *, metadata: dict[str, str],
                 shard_size: int | None = None, support: dict[str, bytes] | None = None, force: bool = False,
                 inputs: Iterable[str] = ()) -> None:
        self.dest = dest
        self.target = check_destination(dest, force=force, inputs=inputs)
        self.kind = self.target.kind
        self.metadata = {"format": "pt", **metadata}
        self.support = dict(support or {})
        self.shards = _shard(infos, shard_size if self.kind == "folder" else None)
        self.infos = infos
        self._tmp: Path | None = None
        self._stream: BinaryIO | None = None
        self._writer: StreamWriter | None = None
        self._shard_no = -1
        self._count = 0
        self._stale: list[Path] = []
        if self.kind == "folder" and self.target.mode == "force":
            self._stale = self._stale_weights()

    def _files(self) -> set[str]:
        names = {self._shard_name(i) for i in range(len(self.shards))}
        if len(self.shards) > 1:
            names.add(INDEX_FILE)
        return names | set(self.support)

    def _stale_weights(self) -> list[Path]:
        """Weight files in a ``--force`` folder this output does not replace: ours go, theirs stop us now."""
        assert self.target.path is not None
        folder = self.target.path
        mine = self._files()
        stale = [folder / n for n in sorted(os.listdir(folder)) if is_weight_file(n) and n not in mine
                 and (folder / n).is_file()]
        theirs = [p.name for p in stale if not _is_ours_in_folder(p)]
        if theirs:
            raise UsageError(f"holds {_names(theirs)}, weights asrmerge did not write and this output would not "
                             "replace; refusing to mix two models in one folder", subject=self.dest,
                             hint="remove them yourself, or choose a new or empty folder")
        return stale

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def __enter__(self) -> CheckpointWriter:
        if self.target.path is not None and self.kind in ("file", "folder"):
            self._tmp = temporary_name(self.target.path)
            if self.kind == "folder":
                self._tmp.mkdir()
        try:
            self._next_shard()
        except BaseException:
            self._abort()
            raise
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._commit()
        else:
            self._abort()

    def _shard_name(self, i: int) -> str:
        if len(self.shards) == 1:
            return "model.safetensors"
        return f"model-{i + 1:05d}-of-{len(self.shards):05d}.safetensors"

    def _next_shard(self) -> None:
        from asrmerge.io.safetensors import StreamWriter

        self._close_stream()
        self._shard_no += 1
        if self._shard_no >= len(self.shards):
            self._writer = None
            return
        try:
            if self.kind == "stdout":
                self._stream = sys.stdout.buffer
            elif self.kind == "stream":
                self._stream = _open_stream(self.target)  # type: ignore[assignment]
            elif self.kind == "file":
                assert self._tmp is not None
                self._stream = open(self._tmp, "wb")
            else:
                assert self._tmp is not None
                self._stream = open(self._tmp / self._shard_name(self._shard_no), "wb")
            assert self._stream is not None
            self._writer = StreamWriter(self._stream, self.shards[self._shard_no], self.metadata)
        except OSError as e:
            raise AsrmergeError(f"cannot write: {e.strerror or e}", subject=self.dest, hint=_WRITE_HINT) from e
        if self._writer.done:
            self._next_shard()

    def _close_stream(self) -> None:
        s, self._stream = self._stream, None
        if s is None:
            return
        try:
            s.flush()
            if self.kind in ("file", "folder"):
                os.fsync(s.fileno())
        finally:
            if s is not sys.stdout.buffer:
                s.close()

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Write the next tensor (it must be ``name``), cast to its output dtype.

        Raises:
            InputError: a value is NaN or infinite after the cast (an overflow of fp16, say).
        """
        if self._writer is None:
            raise AsrmergeError(f"tensor {name} written after the last one", subject=self.dest)
        info = self._writer.infos[self._writer.next]
        if info.name != name:
            raise AsrmergeError(f"tensor {name} written out of order (expected {info.name})", subject=self.dest)
        out = cast_finite(tensor, info.dtype, name, self.dest, streamed=self.kind in ("stdout", "stream"))
        try:
            self._writer.write(out)
        except OSError as e:
            raise AsrmergeError(f"cannot write: {e.strerror or e}", subject=self.dest, hint=_WRITE_HINT) from e
        self._count += 1
        if self._writer.done:
            try:
                self._next_shard()
            except OSError as e:
                raise AsrmergeError(f"cannot write: {e.strerror or e}", subject=self.dest, hint=_WRITE_HINT) from e

    def _commit(self) -> None:
        if self._count != len(self.infos):
            self._abort()
            raise AsrmergeError(f"only {self._count} of {len(self.infos)} tensors were written", subject=self.dest)
        try:
            self._close_stream()
            if self.kind in ("stdout", "stream"):
                return
            assert self._tmp is not None and self.target.path is not None
            dest = self.target.path
            self._recheck(dest)
            if self.kind == "folder":
                self._finish_folder()
                _fsync_dir(self._tmp)
                if self.target.mode == "force":
                    self._merge_into(dest)
                else:
                    _swap_in(self._tmp, dest)
            else:
                os.replace(self._tmp, dest)
            self._tmp = None
            _fsync_dir(dest.parent)
        except OSError as e:
            self._abort()
            raise AsrmergeError(f"cannot write: {e.strerror or e}", subject=self.dest, hint=_WRITE_HINT) from e
        except BaseException:
            self._abort()
            raise

    def _recheck(self, dest: Path) -> None:
        """What appeared at ``dest`` since the check (another program's files) is not replaced either."""
        if self.target.mode == "force" or not os.path.lexists(dest):
            return
        if os.path.isdir(dest) != (self.kind == "folder"):
            raise UsageError("changed while it was being written (a file became a folder or the other way round)",
                             subject=self.dest, hint="run again")
        foreign = _foreign(dest, self.kind, CHECKPOINT)
        if foreign:
            raise UsageError(f"{foreign} now (it changed while it was being written); refusing to replace it",
                             subject=self.dest, hint="choose a new or empty folder, or --force")

    def _merge_into(self, dest: Path) -> None:
        """``--force`` into a folder: our files replace theirs by name, stale weights of ours go, nothing else."""
        assert self._tmp is not None
        names = sorted(os.listdir(self._tmp), key=lambda n: (n == INDEX_FILE, n))  # the index last
        for name in names:
            os.replace(self._tmp / name, dest / name)
        for p in self._stale:
            p.unlink(missing_ok=True)
        _fsync_dir(dest)
        self._tmp.rmdir()

    def _finish_folder(self) -> None:
        assert self._tmp is not None
        if len(self.shards) > 1:
            index = {
                "metadata": {"total_size": sum(i.nbytes for i in self.infos)},
                "weight_map": {i.name: self._shard_name(k) for k, shard in enumerate(self.shards) for i in shard},
            }
            (self._tmp / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
        support = dict(self.support)
        if "asrmerge.version" in self.metadata and "README.md" not in support:
            from asrmerge.io.card import model_card

            support["README.md"] = model_card(self.metadata, Path(self.dest).name).encode()
        if "config.json" in support:
            support["config.json"] = _config_with_dtype(support["config.json"], self.infos)
        for name, data in support.items():
            with open(self._tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())

    def _abort(self) -> None:
        s, self._stream = self._stream, None
        if s is not None and s is not sys.stdout.buffer:
            try:
                s.close()
            except OSError:
                pass
        if self._tmp is not None and (self._tmp.exists() or self._tmp.is_symlink()):
            _remove(self._tmp)
        self._tmp = None


class MemoryWriter:
    """:class:`CheckpointWriter`'s stand-in for the Python API: keeps the tensors in memory, cast as it casts them.

    Args:
        infos: every output tensor with its output dtype (the order is not checked); or later, :meth:`expect`.
        label: names the output in errors.
    """

    def __init__(self, infos: list[TensorInfo] | None = None, label: str = "<memory>") -> None:
        self.dtypes: dict[str, str] = {}
        self.label = label
        self.tensors: dict[str, torch.Tensor] = {}
        self.metadata: dict[str, str] = {}
        self.expect(infos or [])

    def expect(self, infos: list[TensorInfo], metadata: dict[str, str] | None = None) -> MemoryWriter:
        """Set the output tensors and dtypes (and the metadata a file would carry, kept in :attr:`metadata`)."""
        self.dtypes = {i.name: i.dtype for i in infos}
        self.metadata = dict(metadata or {})
        return self

    def __enter__(self) -> MemoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Keep ``tensor`` cast to its output dtype (an overflow is an :class:`InputError`, as in a file)."""
        self.tensors[name] = cast_finite(tensor, self.dtypes[name], name, self.label)


def _is_ours_in_folder(path: Path) -> bool:
    """A weight file of an earlier output: safetensors with our metadata, or an index of such shards."""
    if path.name != INDEX_FILE:
        return is_our_checkpoint(path)
    try:
        weight_map = json.loads(path.read_bytes())["weight_map"]
        shards = set(weight_map.values())
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, OSError):
        return False
    return bool(shards) and all(isinstance(s, str) and "/" not in s and is_our_checkpoint(path.parent / s)
                                for s in shards)


def _config_with_dtype(raw: bytes, infos: list[TensorInfo]) -> bytes:
    """config.json with its dtype fields set to the weights' dtype, so transformers loads them as written."""
    sizes: dict[str, int] = {}
    for i in infos:
        if i.is_float:
            sizes[i.dtype] = sizes.get(i.dtype, 0) + i.numel
    if not sizes:
        return raw
    name = str(torch_dtype(max(sizes, key=lambda k: sizes[k]))).removeprefix("torch.")
    try:
        cfg = json.loads(raw)
    except ValueError:
        return raw
    cfg["dtype"] = name
    if "torch_dtype" in cfg:
        cfg["torch_dtype"] = name
    cfg.setdefault("architectures", ["WhisperForConditionalGeneration"])
    return (json.dumps(cfg, indent=2, sort_keys=True) + "\n").encode()


# -- other files -------------------------------------------------------------------------------------------


def _write_error(dest: str, e: OSError) -> AsrmergeError:
    return AsrmergeError(f"cannot write: {e.strerror or e}", subject=dest, hint=_WRITE_HINT)


@contextmanager
def open_text(dest: Destination, *, append: bool = False) -> Iterator[IO[str]]:
    """A text stream onto a checked destination: stdout, a special file, a file appended to, or a new file
    written under a temporary name and renamed into place when the block ends without an error.

    Args:
        dest: from :func:`check_destination` (``owner="transcript"``).
        append: add to the end of the file (``--resume``) instead of replacing it.
    """
    if dest.kind == "stdout":
        yield sys.stdout
        return
    if dest.kind == "stream":
        s = _open_stream(dest, text=True)
        try:
            yield s  # type: ignore[misc]
        finally:
            try:
                s.close()
            except OSError:
                pass
        return
    assert dest.path is not None
    if append:
        try:
            f = open(dest.path, "a", encoding="utf-8")
        except OSError as e:
            raise _write_error(dest.text, e) from e
        try:
            yield f
        except OSError as e:
            raise _write_error(dest.text, e) from e
        finally:
            try:
                f.close()
            except OSError:
                pass
        return
    tmp = temporary_name(dest.path)
    try:
        f = open(tmp, "w", encoding="utf-8")
    except OSError as e:
        raise _write_error(dest.text, e) from e
    try:
        yield f
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(tmp, dest.path)
        _fsync_dir(dest.path.parent)
    except OSError as e:
        _close_quietly(f)
        tmp.unlink(missing_ok=True)
        raise _write_error(dest.text, e) from e
    except BaseException:
        _close_quietly(f)
        tmp.unlink(missing_ok=True)
        raise


def _close_quietly(f: IO[str]) -> None:
    try:
        f.close()
    except OSError:
        pass


def replace_text(path: Path, text: str) -> None:
    """Replace the file ``path`` by ``text`` atomically (a temporary beside it, renamed into place)."""
    tmp = temporary_name(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
