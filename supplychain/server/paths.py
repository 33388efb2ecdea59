"""Confine request paths to ``--root``: a path that could leave it is refused before any scan.

Refused (``PathRefused``, answered 400): non-text, empty, over 4096 characters, NUL or control
characters, backslashes, absolute paths (POSIX or drive letters), ``..`` components, the same
after one round of percent-decoding (``%2e%2e/…``: a client or proxy may decode it), and any path
whose resolution (every symbolic link followed) is not under the resolved root. A path that
resolves under the root but does not exist is ``PathMissing`` (404).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

MAX_PATH = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")


class PathRefused(ValueError):
    """The path could leave the root (or is not a plain relative path)."""


class PathMissing(FileNotFoundError):
    """The path stays under the root but names nothing."""


def _check_text(text: str) -> None:
    if _CONTROL.search(text):
        raise PathRefused("control character in path")
    if "\\" in text:
        raise PathRefused("backslash in path")
    if text.startswith("/") or _DRIVE.match(text):
        raise PathRefused("absolute path")
    if any(part == ".." for part in PurePosixPath(text).parts):
        raise PathRefused("'..' in path")


def resolve_under(root: Path, rel: object) -> Path:
    """The resolved path ``rel`` names under ``root``; ``PathRefused``/``PathMissing`` if not."""
    if not isinstance(rel, str):
        raise PathRefused("path must be a string")
    if not rel or len(rel) > MAX_PATH:
        raise PathRefused("path is empty or too long")
    _check_text(rel)
    decoded = unquote(rel)
    if decoded != rel:
        _check_text(decoded)
    base = root.resolve(strict=True)
    target = base.joinpath(rel)
    try:
        resolved = target.resolve(strict=True)
    except FileNotFoundError:
        resolved = target.resolve(strict=False)
        if not resolved.is_relative_to(base):
            raise PathRefused("path leaves the root") from None
        raise PathMissing(rel) from None
    except (OSError, RuntimeError) as exc:  # link loops, permission
        raise PathRefused(f"path cannot be resolved: {type(exc).__name__}") from None
    if not resolved.is_relative_to(base):
        raise PathRefused("path leaves the root")
    return resolved
