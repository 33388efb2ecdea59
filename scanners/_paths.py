"""The one test of whether a name taken from an artifact reaches outside its directory.

Archive members (zip, tar, 7z, torch and Keras archives), config file paths, ONNX external-data
locations and weight-map shard names are all names an attacker chose and a loader or extractor
joins to a directory. Every one is judged here, so a trick taught to one check (backslashes,
drive letters, Unicode dots that normalise to ``..``) is known to all of them.
"""

from __future__ import annotations

import re
import unicodedata

_DRIVE = re.compile(r"^[A-Za-z]:")
URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]{1,15}://")


def path_escape(name: str, *, home: bool = False) -> str | None:
    """Why ``name`` escapes the directory it is joined to, or ``None`` for a plain relative path.

    Judged on the name as Windows and POSIX extractors see it: backslashes are separators, and
    the NFKC form is checked too (``\\u2025``, fullwidth dots and solidi become ``..`` and ``/``
    on filesystems and in tools that normalise). A segment of only dots and trailing spaces
    (``.. ``, ``...``) is a parent step to Win32, which strips them. ``home`` also counts a
    leading ``~`` (loaders that call ``expanduser``; extractors never expand it).
    """
    if "\x00" in name:
        return "NUL byte in name"
    forms = (name,) if name.isascii() else (name, unicodedata.normalize("NFKC", name))
    for form in forms:
        norm = form.replace("\\", "/")
        if norm.startswith("/") or _DRIVE.match(norm):
            return "absolute path"
        if home and norm.startswith("~"):
            return "home-directory path"
        for seg in norm.split("/"):
            if seg.startswith("..") and not seg.rstrip(". "):
                return "parent-directory traversal"
    return None


def is_outside_path(value: str) -> bool:
    """A path a loader opens (``expanduser`` included) that leaves the model directory."""
    return path_escape(value, home=True) is not None


def is_url(value: str) -> bool:
    """True when ``value`` starts with a URL scheme (http://, gs://, file://...)."""
    return bool(URL_RE.match(value))


__all__ = ["URL_RE", "is_outside_path", "is_url", "path_escape"]
