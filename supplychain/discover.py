"""Discovery: turn scan targets into the regular files to open, failing closed on everything else.

What a loader opens is a *name*, so names are what we report. Rules (README "Links, the Hugging
Face cache and special files"):

- A symbolic link given as a target is resolved and scanned under the name given.
- Inside a walk, a link whose target stays inside the scan root is scanned under the link's own
  path (the name a loader opens); every name of one file (same device and inode) is scanned once
  and the results are reported for each name, with the link target in the evidence.
- Hugging Face cache (``models--org--name/snapshots/<commit>/file -> ../../blobs/<sha>``): a link
  from a repo's ``snapshots/`` into that same repo's ``blobs/`` is followed wherever the scan
  starts (a snapshot, a ``models--…`` directory or the hub root). A blob that a snapshot names is
  reported only under its snapshot path(s), never as ``blobs/<sha>``; a blob no snapshot names is
  still content on disk and is scanned under ``blobs/<sha>``.
- Any other link out of the root is a ``GEN004`` finding that says where it points; a dangling
  link or a link loop is ``GEN006``. Links are never followed out of the root, and resolution is
  bounded by the kernel's own loop limit (``ELOOP``), so a loop cannot hang the walk.
- FIFOs, sockets and devices are never opened (a read could block forever or return whatever a
  writer feeds a loader later): each is a ``GEN008`` finding at HIGH.
- A directory that cannot be listed is a ``GEN007`` finding; nothing is dropped silently.

A target the user named that cannot be read at all is an operational error (``TargetError``, exit
code 2); trouble *inside* a directory is a finding that fails the gate (exit code 1).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from supplychain.core.errors import ConfigError, SupplyChainError
from supplychain.core.model import Confidence, Finding, Location, Rule, ScanResult, Status
from supplychain.core.rules import GEN004, GEN005, GEN006, GEN007, GEN008

HF_REPO_DIR = re.compile(r"^(models|datasets|spaces)--.+")
"""Hugging Face cache repo directory names (``/`` in the repo id becomes ``--``)."""

MODEL_SUFFIXES = frozenset(
    {
        ".bin",
        ".safetensors",
        ".gguf",
        ".ggml",
        ".onnx",
        ".h5",
        ".hdf5",
        ".keras",
        ".pt",
        ".pt2",
        ".pth",
        ".ckpt",
        ".pkl",
        ".pickle",
        ".joblib",
        ".npy",
        ".npz",
        ".msgpack",
        ".pb",
        ".tflite",
        ".mlmodel",
        ".model",
        ".llamafile",
        ".dill",
        ".sav",
    }
)
"""Suffixes that claim a weights or model format; only used to word special-file findings."""


class TargetError(SupplyChainError):
    """A target named on the command line cannot be read at all (operational error, exit 2)."""


@dataclass(frozen=True, slots=True)
class Name:
    """One name under which a loader could open a file."""

    rel: str
    """Path shown in the report."""
    link: str | None = None
    """Where the link says it points, when this name is a symbolic link."""


@dataclass(frozen=True, slots=True)
class Item:
    """One regular file to open once, with every name it is reported under."""

    fs_path: Path
    """The primary name on disk (a link stays a link): scanners resolve siblings from here."""
    real: Path
    """The resolved regular file the engine opens (no link in its last component)."""
    root: Path
    """Directory that "stays inside the model" checks use (an HF repo dir for snapshot files)."""
    names: tuple[Name, ...]
    """Primary name first; the findings are reported once for every name."""
    device: int
    inode: int
    top_level: bool = False
    """Named on the command line: failing to read it is an operational error, not a finding."""

    @property
    def rel(self) -> str:
        """The primary name shown in the report."""
        return self.names[0].rel


@dataclass(slots=True)
class Discovery:
    """What discovery found: files to open, and findings/outcomes for everything else."""

    items: list[Item] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    results: list[ScanResult] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Seen:
    name: Name
    fs_path: Path
    real: Path
    root: Path
    device: int
    inode: int
    top_level: bool
    hf_blob: bool
    """A direct path into an HF repo's ``blobs/`` (hidden when a snapshot names the same file)."""


def special_kind(mode: int) -> str:
    """Human name of a non-regular, non-directory, non-link file type."""
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    return "special file"


def claims_model_format(name: str) -> bool:
    """Whether a file name claims a weights/model format (``pytorch_model.bin``, ``*.gguf``…)."""
    lower = name.lower()
    return Path(lower).suffix in MODEL_SUFFIXES or lower.startswith(("pytorch_model", "model."))


class _Walker:
    """Collects names, findings and outcomes; one instance per ``discover`` call."""

    def __init__(self) -> None:
        self.out = Discovery()
        self.seen: list[_Seen] = []
        self._hf_repo_cache: dict[Path, Path | None] = {}

    # -- findings -------------------------------------------------------------------------------

    def finding(self, rule: Rule, rel: str, message: str, evidence: str = "") -> None:
        self.out.findings.append(
            Finding(
                rule=rule.id,
                severity=rule.severity,
                confidence=Confidence.HIGH,
                message=message,
                location=Location(path=rel),
                evidence=evidence,
            )
        )

    def outcome(self, rel: str, status: Status, reason: str, expected: bool = False) -> None:
        self.out.results.append(ScanResult("engine", rel, status, reason, expected=expected))

    def special(self, rel: str, mode: int, via: str | None = None) -> None:
        """A FIFO/socket/device: never opened, always a HIGH finding (fail closed)."""
        what = special_kind(mode)
        name = rel.rsplit("/", 1)[-1]
        claim = " named like model weights" if claims_model_format(name) else ""
        through = f" (through symlink {via})" if via else ""
        self.finding(
            GEN008,
            rel,
            f"{what}{claim}{through}: never opened; a loader would block on it or read "
            "whatever a writer feeds it, which no scan can see",
            evidence=f"{what}: {name}",
        )
        self.outcome(rel, Status.SKIPPED, f"{what}: never opened")

    # -- Hugging Face cache ---------------------------------------------------------------------

    def hf_repo_of(self, directory: Path) -> Path | None:
        """The real ``models--…`` directory when ``directory`` lies inside its ``snapshots/``."""
        if directory in self._hf_repo_cache:
            return self._hf_repo_cache[directory]
        found: Path | None = None
        try:
            real = directory.resolve()
        except (OSError, RuntimeError):
            real = None
        if real is not None:
            for anc in (real, *real.parents):
                if anc.name == "snapshots" and _is_hf_repo(anc.parent):
                    found = anc.parent
                    break
        self._hf_repo_cache[directory] = found
        return found

    def is_hf_blob_link(self, link: Path, real: Path) -> bool:
        """A link in a repo's ``snapshots/`` that resolves to a file in that repo's ``blobs/``."""
        repo = self.hf_repo_of(link.parent)
        return repo is not None and real.parent == repo / "blobs"

    # -- one entry ------------------------------------------------------------------------------

    def add(
        self,
        rel: str,
        fs_path: Path,
        real: Path,
        root: Path,
        st: os.stat_result,
        *,
        link: str | None = None,
        top_level: bool = False,
    ) -> None:
        parent_real = real.parent
        hf_blob = (
            link is None
            and parent_real.name == "blobs"
            and _is_hf_repo(parent_real.parent)
            and (parent_real.parent / "snapshots").is_dir()
        )
        hf_repo = self.hf_repo_of(fs_path.parent) if link is not None else None
        if hf_repo is None and hf_blob:
            hf_repo = parent_real.parent
        if _is_hf_marker(fs_path, st):
            self.outcome(
                rel,
                Status.SKIPPED,
                "Hugging Face cache marker (empty negative-cache or lock file)",
                expected=True,
            )
            return
        self.seen.append(
            _Seen(
                name=Name(rel, link),
                fs_path=fs_path,
                real=real,
                root=hf_repo if hf_repo is not None else root,
                device=st.st_dev,
                inode=st.st_ino,
                top_level=top_level,
                hf_blob=hf_blob,
            )
        )

    def symlink(self, path: Path, rel: str, root: Path) -> None:
        """A link met inside a walk: follow it only if it stays inside the root (or is HF)."""
        try:
            shown = str(path.readlink())
        except OSError as exc:
            self.finding(GEN006, rel, f"symbolic link cannot be read: {exc.strerror}")
            self.outcome(rel, Status.FAILED, "unreadable symbolic link")
            return
        try:
            real = path.resolve(strict=True)
        except FileNotFoundError:
            self.finding(GEN006, rel, f"dangling symbolic link to {shown}", evidence=shown)
            self.outcome(rel, Status.SKIPPED, "dangling symbolic link")
            return
        except (OSError, RuntimeError) as exc:
            loop = isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP
            what = "symbolic link loop" if loop else f"unresolvable symbolic link ({exc})"
            self.finding(GEN006, rel, f"{what} through {shown}", evidence=shown)
            self.outcome(rel, Status.SKIPPED, what)
            return
        if not (real.is_relative_to(root) or self.is_hf_blob_link(path, real)):
            self.finding(
                GEN004,
                rel,
                f"symbolic link points outside the scan root to {real}; it was not followed",
                evidence=shown,
            )
            self.outcome(rel, Status.SKIPPED, "symlink out of root")
            return
        try:
            st = real.stat()
        except OSError as exc:
            self.finding(GEN005, rel, f"link target cannot be read: {exc.strerror}", shown)
            self.outcome(rel, Status.FAILED, f"cannot stat link target: {exc.strerror}")
            return
        if stat.S_ISDIR(st.st_mode):
            target_rel = real.relative_to(root).as_posix() if real.is_relative_to(root) else shown
            self.outcome(
                rel,
                Status.SKIPPED,
                f"symlink to directory {target_rel} (walked there)",
                expected=True,
            )
        elif stat.S_ISREG(st.st_mode):
            self.add(rel, path, real, root, st, link=shown)
        else:
            self.special(rel, st.st_mode, via=shown)

    def walk(self, top: Path, root: Path, prefix: str) -> None:
        """Walk ``top`` (a real directory) without following links; every error is a finding."""
        stack: list[tuple[Path, str]] = [(top, "")]
        visited: set[tuple[int, int]] = set()
        while stack:
            directory, sub = stack.pop()
            shown = (prefix + sub).rstrip("/") or "."
            try:
                dst = directory.lstat()
                if (dst.st_dev, dst.st_ino) in visited:
                    continue  # a bind mount looping back: already walked
                visited.add((dst.st_dev, dst.st_ino))
                with os.scandir(directory) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                if not sub:  # the directory named on the command line: operational (exit 2)
                    raise TargetError(f"cannot read {top}: {exc.strerror or exc}") from None
                self.finding(
                    GEN007,
                    shown,
                    f"directory cannot be listed: {exc.strerror or exc}; its files were not "
                    "scanned",
                )
                self.outcome(shown, Status.FAILED, f"cannot list directory: {exc.strerror}")
                continue
            subdirs: list[tuple[Path, str]] = []
            for entry in entries:
                path = Path(entry.path)
                rel = prefix + sub + entry.name
                try:
                    st = _entry_stat(entry)
                except OSError as exc:
                    self.finding(GEN005, rel, f"file vanished or cannot be read: {exc.strerror}")
                    self.outcome(rel, Status.FAILED, f"cannot stat: {exc.strerror}")
                    continue
                mode = st.st_mode
                if stat.S_ISLNK(mode):
                    self.symlink(path, rel, root)
                elif stat.S_ISDIR(mode):
                    subdirs.append((path, sub + entry.name + "/"))
                elif stat.S_ISREG(mode):
                    # ``top`` is resolved and no link is ever walked into, so ``path`` is real.
                    self.add(rel, path, path, root, st)
                else:
                    self.special(rel, mode)
            stack.extend(reversed(subdirs))

    def target(self, raw: str | Path, single: bool) -> None:
        """One command-line target: a file, a directory, or a link to either."""
        given = Path(raw)
        try:
            lst = os.lstat(given)
        except (FileNotFoundError, NotADirectoryError):
            raise ConfigError(f"no such file or directory: {raw}") from None
        except OSError as exc:
            raise TargetError(f"cannot read {raw}: {exc.strerror}") from None
        link: str | None = None
        if stat.S_ISLNK(lst.st_mode):
            link = str(given.readlink())
            try:
                real = given.resolve(strict=True)
                st = real.stat()
            except FileNotFoundError:
                raise TargetError(f"{raw} is a dangling symbolic link to {link}") from None
            except (OSError, RuntimeError) as exc:
                raise TargetError(f"{raw}: cannot resolve symbolic link ({exc})") from None
        else:
            try:
                real = given.resolve(strict=True)
            except (OSError, RuntimeError) as exc:
                raise TargetError(f"cannot read {raw}: {exc}") from None
            st = lst
        if stat.S_ISDIR(st.st_mode):
            prefix = "" if single else given.name + "/"
            self.walk(real, real, prefix)
        elif stat.S_ISREG(st.st_mode):
            root = real.parent if link is None else given.absolute().parent
            self.add(given.name, given, real, root, st, link=link, top_level=True)
        else:
            self.special(given.name, st.st_mode, via=link)

    # -- grouping -------------------------------------------------------------------------------

    def items(self) -> list[Item]:
        """Group names by (device, inode): one item per file, every name kept for reporting."""
        groups: dict[tuple[int, int], list[_Seen]] = {}
        for seen in self.seen:
            groups.setdefault((seen.device, seen.inode), []).append(seen)
        items: list[Item] = []
        for group in groups.values():
            named_by_snapshot = any(s.name.link is not None for s in group)
            keep = [s for s in group if not (s.hf_blob and named_by_snapshot)] or group
            keep.sort(key=lambda s: (not s.top_level, s.name.rel))
            unique: dict[str, _Seen] = {}
            for s in keep:
                unique.setdefault(s.name.rel, s)  # the same target given twice: one name
            keep = list(unique.values())
            primary = keep[0]
            items.append(
                Item(
                    fs_path=primary.fs_path,
                    real=primary.real,
                    root=primary.root,
                    names=tuple(s.name for s in keep),
                    device=primary.device,
                    inode=primary.inode,
                    top_level=any(s.top_level for s in keep),
                )
            )
        items.sort(key=lambda i: i.rel)
        return items


def _entry_stat(entry: os.DirEntry[str]) -> os.stat_result:
    """``lstat`` of a directory entry (a separate seam so tests can race a vanishing entry)."""
    return entry.stat(follow_symlinks=False)


def _is_hf_repo(directory: Path) -> bool:
    return bool(HF_REPO_DIR.match(directory.name)) and (directory / "blobs").is_dir()


def _is_hf_marker(path: Path, st: os.stat_result) -> bool:
    """Empty HF bookkeeping: ``.no_exist/<commit>/<file>`` negative-cache entries and lock files
    (``<hub>/.locks/…``, ``<local_dir>/.cache/huggingface/…``). Non-empty ones are scanned."""
    if st.st_size != 0:
        return False
    lock = path.name.endswith(".lock")
    for anc in path.parents:
        if anc.name == ".no_exist" and HF_REPO_DIR.match(anc.parent.name):
            return True
        if lock and anc.name == ".locks":
            return True
        if lock and anc.name == "huggingface" and anc.parent.name == ".cache":
            return True  # ``local_dir`` downloads: .cache/huggingface/download/<file>.lock
    return False


def discover(paths: Sequence[str | Path]) -> Discovery:
    """Walk the targets in a stable order (see the module docstring for every rule).

    Raises ``ConfigError`` for a target that does not exist and ``TargetError`` for one that
    cannot be read (both exit code 2).
    """
    walker = _Walker()
    single = len(paths) == 1
    for raw in paths:
        walker.target(raw, single)
    walker.out.items = walker.items()
    return walker.out


__all__ = [
    "Discovery",
    "Item",
    "Name",
    "TargetError",
    "claims_model_format",
    "discover",
    "special_kind",
]
