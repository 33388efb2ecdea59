"""Requirement files parsed, never installed: what a ``pip install`` of them would pull in.

pip-audit resolves requirements by running pip, and pip builds local and sdist requirements by
running their ``setup.py`` (measured on pip-audit 2.10.1, issue #14): auditing a pull request that
way executes the pull request. This scanner reads the files as text (``packaging`` for PEP 508 and
PEP 440, ``tomllib`` / ``json`` for lock files) and reports what a reviewer must see before anyone
installs them: unpinned and unhashed requirements, extra or replaced indexes (dependency
confusion), direct URL, VCS and local-path requirements (unreviewed code, and a local path runs
its build on install), names one typo away from a popular ML package, and anything it cannot parse
(fail closed). Each requirement becomes a ``dependency.requirement`` fact; the vulnerability
lookup (``supplychain.deps.audit``) and the AI-BOM read those facts.

``-r`` / ``-c`` includes are followed inside the scan root only (bounded depth, cycles refused).
An included file that is itself a requirement file by name is scanned on its own, so its
content is reported there, once; other included files are parsed here, under their own path.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar
from urllib.parse import urlsplit, urlunsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from scanners.base import Artifact, ScanContext, note_sibling_read
from scanners.deps_options import DepsOptions, requirements_format
from supplychain.core.errors import LimitExceeded
from supplychain.core.limits import Limits
from supplychain.core.model import (
    ArtifactKind,
    Confidence,
    Fact,
    Finding,
    Location,
    Rule,
    Severity,
)
from supplychain.core.rules import make_rule

_REF = ("CWE-829: Inclusion of Functionality from Untrusted Control Sphere",)

DEP001 = make_rule(
    "DEP001",
    "Unpinned requirement",
    Severity.LOW,
    "The requirement admits a range of versions, so what gets installed is whatever the index "
    "serves on the day: a compromised release, or one with a known vulnerability, arrives "
    "without review, and the audit can only say which versions the range admits. Alone this is "
    "hygiene, not an attack, so it is LOW and does not fail the default gate.",
    "Pin an exact version (``name==1.2.3``), ideally with ``--hash``, or install from a lock "
    "file (pip-compile, uv, poetry).",
    cwe=1357,
    references=_REF,
)
DEP002 = make_rule(
    "DEP002",
    "Requirement without a hash",
    Severity.MEDIUM,
    "Other requirements of this install carry ``--hash`` (or the ``[deps]`` table sets "
    "``require_hashes = true``), but this one does not. Hashes are what makes a pin mean "
    "'these bytes': without one, a re-uploaded or mirrored artifact is accepted. pip's "
    "hash-checking mode refuses such a file; other installers may silently install the "
    "unhashed requirement. MEDIUM when the file mixes hashed and unhashed requirements, HIGH "
    "when hashes are required.",
    "Generate hashes for every requirement (``pip-compile --generate-hashes``, ``uv pip "
    "compile --generate-hashes``).",
    cwe=353,
)
DEP003 = make_rule(
    "DEP003",
    "Extra package index (dependency confusion)",
    Severity.HIGH,
    "``--extra-index-url`` (or a second Pipfile source) makes pip consider every index for every "
    "package and pick the highest version: anyone who registers an internal package name on "
    "the public index, or controls the extra index, decides what is installed. This is how the "
    "torchtriton compromise of PyTorch nightly (December 2022) worked.",
    "Use a single index that proxies PyPI (``--index-url``), or an installer with a first-index "
    "strategy (uv's default), and reserve internal names on PyPI.",
    cwe=427,
    references=("https://pytorch.org/blog/compromised-nightly-dependency/",),
)
DEP004 = make_rule(
    "DEP004",
    "Package index replaced",
    Severity.MEDIUM,
    "``--index-url`` (or a lock file's registry) replaces PyPI: every package comes from that "
    "server, which the file's author chose and nobody here reviewed. MEDIUM for an HTTPS index "
    "(a private mirror is a normal setup), HIGH over plain HTTP, where anyone on the path can "
    "serve packages.",
    "Check the index is your organisation's mirror and uses HTTPS.",
    cwe=494,
)
DEP005 = make_rule(
    "DEP005",
    "Extra package location (--find-links)",
    Severity.MEDIUM,
    "``--find-links`` adds an HTML page or a directory of archives as a package source beside "
    "the index: an attacker-controlled page wins whenever it offers a higher version. A local "
    "directory is HIGH: it holds wheels or sdists from the scanned tree itself, and an sdist "
    "runs its ``setup.py`` on install. Plain HTTP is HIGH too.",
    "Remove ``--find-links`` or point it at a reviewed HTTPS location you control.",
    cwe=427,
)
DEP006 = make_rule(
    "DEP006",
    "TLS verification disabled for a host",
    Severity.HIGH,
    "``--trusted-host`` (or ``verify_ssl = false``) turns off certificate checking for a package "
    "host: anyone on the network path can serve any package under any name.",
    "Remove it and give the index a valid certificate.",
    cwe=295,
)
DEP007 = make_rule(
    "DEP007",
    "Direct URL requirement",
    Severity.MEDIUM,
    "The package comes from a URL, not an index: no version to audit, no index history, and "
    "whoever controls the URL can change the bytes (unless a hash pins them). HIGH over plain "
    "HTTP.",
    "Publish the package to your index and pin a version with a hash.",
    cwe=494,
    references=_REF,
)
DEP008 = make_rule(
    "DEP008",
    "VCS requirement",
    Severity.MEDIUM,
    "The package is built from a version-control checkout: unreviewed source whose build runs "
    "at install time, and no released version to audit. HIGH when the reference is a branch, a "
    "tag or absent (it moves: the code can change under the same requirement); MEDIUM when "
    "pinned to a full commit hash.",
    "Pin the full commit hash, or better, publish a release and depend on its version.",
    cwe=829,
)
DEP009 = make_rule(
    "DEP009",
    "Local path requirement (runs code from the tree on install)",
    Severity.HIGH,
    "The requirement is a directory or archive from the scanned tree (``-e ./pkg``, ``./pkg``, "
    "``file:``). Installing it runs its ``setup.py`` / build backend: code in the pull request "
    "executes on whoever installs. pip-audit 2.10.1 runs that build even in a dry run, and its "
    "safe mode silently skips such requirements; this scanner never builds anything.",
    "Review the local package's build code, or replace it with a released, pinned package.",
    cwe=829,
)
DEP010 = make_rule(
    "DEP010",
    "Package name one typo from a popular ML package",
    Severity.HIGH,
    "The name is a near miss of a widely used ML package (one edit, or the same letters with "
    "other separators). Typosquats of torch, transformers, numpy and friends are a standing "
    "delivery route for malicious packages on PyPI.",
    "Check the spelling; if the package is really intended, add a waiver with the reason.",
    cwe=1357,
)
DEP011 = make_rule(
    "DEP011",
    "Requirement line not understood",
    Severity.HIGH,
    "A line is not a requirement or option this scanner understands (invalid PEP 508, unknown "
    "option, bad quoting, not UTF-8). An installer may still read it some other way, so it is "
    "never passed as harmless.",
    "Fix the line; pip would refuse most of these too.",
    cwe=20,
)
DEP012 = make_rule(
    "DEP012",
    "Requirement or lock file not understood",
    Severity.HIGH,
    "The file is named as a requirement or lock file but does not parse (invalid TOML or JSON, "
    "wrong structure, too big, not UTF-8), so what it installs is unknown.",
    "Regenerate the file with its tool, or remove it.",
    cwe=20,
)
DEP013 = make_rule(
    "DEP013",
    "Requirement include not followed",
    Severity.HIGH,
    "A ``-r`` / ``-c`` include points outside the scan root, at a URL, at a missing file, inside "
    "an archive, into a cycle or too deep. Its requirements would be installed but were not "
    "reviewed here.",
    "Keep included requirement files beside the one that includes them, as plain files.",
    cwe=829,
)
STATIC_RULES: tuple[Rule, ...] = (
    DEP001,
    DEP002,
    DEP003,
    DEP004,
    DEP005,
    DEP006,
    DEP007,
    DEP008,
    DEP009,
    DEP010,
    DEP011,
    DEP012,
    DEP013,
)

# -- typosquats ------------------------------------------------------------------------------

POPULAR_ML_PACKAGES: frozenset[str] = frozenset(
    (
        "accelerate",
        "aiohttp",
        "anthropic",
        "bitsandbytes",
        "boto3",
        "catboost",
        "cryptography",
        "datasets",
        "deepspeed",
        "diffusers",
        "einops",
        "evaluate",
        "faiss-cpu",
        "faiss-gpu",
        "fastapi",
        "flash-attn",
        "flax",
        "gensim",
        "gradio",
        "huggingface-hub",
        "jax",
        "jaxlib",
        "jinja2",
        "joblib",
        "keras",
        "langchain",
        "langchain-community",
        "langchain-core",
        "langchain-openai",
        "lightgbm",
        "lightning",
        "llama-index",
        "matplotlib",
        "mlflow",
        "nltk",
        "numba",
        "numpy",
        "onnx",
        "onnxruntime",
        "onnxruntime-gpu",
        "openai",
        "opencv-python",
        "optimum",
        "optuna",
        "pandas",
        "peft",
        "pillow",
        "pip",
        "protobuf",
        "pydantic",
        "pytorch-lightning",
        "pyyaml",
        "ray",
        "requests",
        "safetensors",
        "scikit-learn",
        "scipy",
        "seaborn",
        "sentence-transformers",
        "sentencepiece",
        "setuptools",
        "spacy",
        "streamlit",
        "tensorboard",
        "tensorflow",
        "tensorflow-cpu",
        "tensorflow-gpu",
        "tiktoken",
        "timm",
        "tokenizers",
        "torch",
        "torchaudio",
        "torchvision",
        "tqdm",
        "transformers",
        "triton",
        "trl",
        "urllib3",
        "vllm",
        "wandb",
        "wheel",
        "xformers",
        "xgboost",
    )
)
"""Curated data: widely installed ML packages (canonical names) whose near misses are flagged."""
NEAR_MISS_ALLOWED: frozenset[str] = frozenset(
    (
        "boto",
        "dataset",
        "jinja",
        "openapi",
        "protobuf3",
        "pyaml",
        "scapy",
        "torchx",
    )
)
"""Real, unrelated (or long-established) packages one edit away from a popular name."""
_SEPARATORS = re.compile(r"[-_.]+")


def near_miss(name: str) -> str | None:
    """The popular package ``name`` imitates, or ``None`` (popular names never imitate)."""
    canon = canonicalize_name(name)
    if canon in POPULAR_ML_PACKAGES or canon in NEAR_MISS_ALLOWED or len(canon) < 4:
        return None
    squeezed = _SEPARATORS.sub("", canon)
    for popular in sorted(POPULAR_ML_PACKAGES):
        if squeezed == _SEPARATORS.sub("", popular):
            return popular
        if len(popular) >= 5 and abs(len(popular) - len(canon)) <= 1 and _one_edit(canon, popular):
            return popular
    return None


def _one_edit(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance exactly 1 (substitute, insert, delete or swap neighbours)."""
    if a == b:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return (
            len(diff) == 2
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and a[diff[1]] == b[diff[0]]
        )
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


# -- the requirement model -------------------------------------------------------------------


@dataclass(slots=True)
class Entry:
    """One requirement as the fact and the checks see it."""

    name: str
    version: str
    spec: str
    kind: str
    """``pinned``, ``range``, ``url``, ``vcs`` or ``path``."""
    location: Location
    evidence: str
    hashed: bool = False

    @property
    def purl(self) -> str:
        """``pkg:pypi/name@version`` for a pinned requirement, else empty."""
        if self.kind != "pinned" or not self.name or not self.version:
            return ""
        return f"pkg:pypi/{self.name}@{self.version}"

    def fact(self) -> Fact:
        """The ``dependency.requirement`` fact (shape read by the audit and the AI-BOM)."""
        value = (self.name, self.version, self.spec, self.purl, self.kind)
        return Fact(key="dependency.requirement", value=value, location=self.location)


def redact(url: str) -> str:
    """A URL with any ``user:password@`` replaced by ``***@`` and query values by ``***``
    (``?token=…`` on a private index): evidence and facts never echo credentials."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return re.sub(r"//[^/@\s]*@", "//***@", url.split("?", 1)[0])
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "&".join(
        f"{pair.split('=', 1)[0]}=***" if "=" in pair else "***"
        for pair in parts.query.split("&")
        if pair
    )
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _redact_text(text: str) -> str:
    return re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://\S+", lambda m: redact(m.group(0)), text)


VCS_PREFIXES = ("git+", "hg+", "svn+", "bzr+")
ARCHIVE_SUFFIXES = (
    ".whl",
    ".zip",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz",
    ".tar.xz",
    ".txz",
    ".tar",
)
FULL_COMMIT = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")


def _scheme(text: str) -> str:
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*):", text)
    return match.group(1).lower() if match else ""


def _pinned_version(req: Requirement) -> str:
    """The exact version an ``==X`` / ``===X`` specifier pins, else empty."""
    specs = list(req.specifier)
    if len(specs) != 1:
        return ""
    (spec,) = specs
    if spec.operator == "===" or (spec.operator == "==" and "*" not in spec.version):
        return spec.version
    return ""


def _vcs_ref(url: str) -> str:
    """The ``@ref`` of a pip VCS URL (``git+https://host/repo.git@ref#egg=x``), if any."""
    path = urlsplit(url.split("+", 1)[1] if "+" in url else url).path
    tail = path.rsplit("/", 1)[-1]
    return tail.rsplit("@", 1)[1] if "@" in tail else ""


def _egg(url: str) -> str:
    match = re.search(r"[#&]egg=([A-Za-z0-9][A-Za-z0-9._-]*)", url)
    return str(canonicalize_name(match.group(1))) if match else ""


# -- the scanner -----------------------------------------------------------------------------


@dataclass(slots=True)
class _State:
    """What one scan of one file (and its includes) has gathered."""

    artifact: Artifact
    options: DepsOptions
    limits: Limits = field(default_factory=Limits)
    entries: list[Entry] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    any_hash: bool = False
    lines: dict[tuple[str, int], int] = field(default_factory=dict)
    """(path, byte offset) of a line → its 1-based line number, for messages."""
    hash_mode: bool = False
    """``--require-hashes`` was given: every requirement must be hashed."""

    def add(self, entry: Entry) -> None:
        cap = self.limits.max_requirements
        if len(self.entries) >= cap:
            raise LimitExceeded(f"more than {cap} requirements in one file and its includes")
        self.entries.append(entry)
        self.any_hash = self.any_hash or entry.hashed

    def finding(
        self,
        rule: Rule,
        message: str,
        location: Location,
        evidence: str,
        severity: Severity | None = None,
        confidence: Confidence = Confidence.HIGH,
    ) -> None:
        if location.offset is not None:
            number = self.lines.get((location.path, location.offset))
            if number is not None:
                message = f"{message} (line {number})"
        self.findings.append(
            Finding(
                rule=rule.id,
                severity=rule.severity if severity is None else severity,
                confidence=confidence,
                message=message,
                location=location,
                evidence=_redact_text(evidence),
            )
        )


class RequirementsScanner:
    """``requirements*.txt`` / ``constraints*.txt`` / ``pyproject.toml`` / lock files, parsed."""

    name: ClassVar[str] = "requirements"
    version: ClassVar[str] = "1"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset({ArtifactKind.REQUIREMENTS})
    rules: ClassVar[tuple[Rule, ...]] = STATIC_RULES
    settings_type: ClassVar[type] = DepsOptions

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """Parse the file by its format; emit one fact per requirement, then the findings."""
        state = _State(artifact, ctx.settings(DepsOptions), ctx.limits)
        fmt = requirements_format(artifact.name) or "pip"
        stopped: LimitExceeded | None = None
        try:
            if fmt == "pip":
                _PipFile(state).run()
            else:
                _parse_manifest(state, fmt)
        except LimitExceeded as exc:
            stopped = exc  # what was read before the cap is still reported, then GEN002
        for entry in state.entries:
            ctx.emit(entry.fact())
        _entry_findings(state)
        yield from state.findings
        if stopped is not None:
            raise stopped


def _entry_findings(state: _State) -> None:
    """Per-requirement findings: pinning, hashes, URL/VCS/path, typosquats."""
    require = state.options.require_hashes
    for e in state.entries:
        if e.kind == "range":
            state.finding(
                DEP001,
                f"{e.name or '?'} is not pinned ({e.spec or 'any version'})",
                e.location,
                e.evidence,
            )
        elif e.kind == "url":
            http = e.spec.lower().startswith("http://")
            state.finding(
                DEP007,
                f"{e.name or 'a package'} is installed from a URL",
                e.location,
                e.evidence,
                Severity.HIGH if http else None,
            )
        elif e.kind == "vcs":
            ref = _vcs_ref(e.spec)
            pinned = bool(FULL_COMMIT.match(ref.lower()))
            why = (
                "pinned to a commit"
                if pinned
                else (f"at moving ref {ref!r}" if ref else "at the default branch")
            )
            state.finding(
                DEP008,
                f"{e.name or 'a package'} is built from a VCS checkout {why}",
                e.location,
                e.evidence,
                None if pinned else Severity.HIGH,
            )
        elif e.kind == "path":
            state.finding(
                DEP009,
                f"{e.name or 'a local package'} is installed from a local path: "
                "its build code runs on install",
                e.location,
                e.evidence,
            )
        if (require or state.any_hash or state.hash_mode) and not e.hashed:
            why = (
                "the policy requires hashes"
                if require
                else "the file says --require-hashes"
                if state.hash_mode
                else "other requirements are hashed"
            )
            state.finding(
                DEP002,
                f"{e.name or 'requirement'} has no --hash ({why})",
                e.location,
                e.evidence,
                Severity.HIGH if require else None,
            )
        if e.name:
            target = near_miss(e.name)
            if target is not None:
                state.finding(
                    DEP010,
                    f"{e.name!r} is one typo away from {target!r}",
                    e.location,
                    e.evidence,
                    confidence=Confidence.MEDIUM,
                )


# -- pip requirement files -------------------------------------------------------------------

_COMMENT = re.compile(r"(^|\s+)#.*$")
_OPTIONS_WITH_VALUE = {
    "-r": "--requirement",
    "--requirement": "--requirement",
    "-c": "--constraint",
    "--constraint": "--constraint",
    "-e": "--editable",
    "--editable": "--editable",
    "-i": "--index-url",
    "--index-url": "--index-url",
    "--extra-index-url": "--extra-index-url",
    "-f": "--find-links",
    "--find-links": "--find-links",
    "--trusted-host": "--trusted-host",
    "--only-binary": "--only-binary",
    "--no-binary": "--no-binary",
    "--use-feature": "--use-feature",
}
_FLAG_OPTIONS = frozenset({"--no-index", "--pre", "--prefer-binary", "--require-hashes"})
_REQ_OPTIONS_WITH_VALUE = frozenset({"--hash", "--config-settings", "--global-option"})


@dataclass(frozen=True, slots=True)
class _Line:
    text: str
    location: Location
    raw: str


class _PipFile:
    """pip's requirement-file syntax, read as pip reads it (``pip/_internal/req/req_file.py``)."""

    def __init__(self, state: _State) -> None:
        self.state = state
        art = state.artifact
        self.root = art.root.resolve() if art.root is not None else None
        self.root_named = Path(art.root).absolute() if art.root is not None else None
        """The root as named (links unresolved): include paths are reported under it."""
        self.visited: set[Path] = set()
        """Files already followed: a diamond of includes is read once, not once per path."""

    def run(self) -> None:
        art = self.state.artifact
        if art.fs_path is None:
            self._file(art.stream, art.path, None, depth=0, chain=())
            return
        # pip joins an include to the directory of the path it opened (a link's own directory,
        # an HF snapshot rather than its blobs/), so ``here`` stays unresolved.
        here = Path(art.fs_path).absolute()
        self._file(art.stream, art.path, here, depth=0, chain=(art.fs_path.resolve(),))

    def _file(
        self, stream: BinaryIO, path: str, real: Path | None, depth: int, chain: tuple[Path, ...]
    ) -> None:
        for line in _logical_lines(stream, path, self.state):
            self._line(line, path, real, depth, chain)

    def _line(
        self, line: _Line, path: str, real: Path | None, depth: int, chain: tuple[Path, ...]
    ) -> None:
        st = self.state
        text = line.text
        if not text.startswith("-"):
            self._requirement(text, line, editable=False)
            return
        try:
            tokens = shlex.split(text, comments=False, posix=True)
        except ValueError as exc:
            st.finding(DEP011, f"bad quoting: {exc}", line.location, line.raw)
            return
        i = 0
        while i < len(tokens):
            token = tokens[i]
            name, eq, value = token.partition("=")
            if token.startswith("--") and eq:
                opt = _OPTIONS_WITH_VALUE.get(name)
            elif token in _OPTIONS_WITH_VALUE:
                opt, value = _OPTIONS_WITH_VALUE[token], ""
            elif token[:2] in _OPTIONS_WITH_VALUE and not token.startswith("--"):
                opt, value, eq = _OPTIONS_WITH_VALUE[token[:2]], token[2:], "="
            elif token in _FLAG_OPTIONS:
                if token == "--require-hashes":  # noqa: S105 - an option, not a secret
                    st.hash_mode = True  # pip then refuses any requirement without --hash
                i += 1
                continue
            else:
                opt = None
            if opt is None:
                st.finding(DEP011, f"unknown option {token!r:.60}", line.location, line.raw)
                return
            if not eq:
                i += 1
                if i >= len(tokens):
                    st.finding(DEP011, f"{opt} needs a value", line.location, line.raw)
                    return
                value = tokens[i]
            i += 1
            if opt == "--editable":
                # the rest of the line belongs to the requirement (e.g. markers never apply)
                self._requirement(" ".join([value, *tokens[i:]]), line, editable=True)
                return
            self._option(opt, value, line, path, real, depth, chain)

    def _option(
        self,
        opt: str,
        value: str,
        line: _Line,
        path: str,
        real: Path | None,
        depth: int,
        chain: tuple[Path, ...],
    ) -> None:
        st = self.state
        shown = redact(value)
        http = value.lower().startswith("http://")
        if opt == "--extra-index-url":
            st.finding(
                DEP003,
                f"extra index {shown}: every package may come from it",
                line.location,
                line.raw,
            )
        elif opt == "--index-url":
            st.finding(
                DEP004,
                f"packages come from {shown} instead of PyPI",
                line.location,
                line.raw,
                Severity.HIGH if http else None,
            )
        elif opt == "--find-links":
            local = _scheme(value) in ("", "file")
            st.finding(
                DEP005,
                f"packages may also come from {shown}",
                line.location,
                line.raw,
                Severity.HIGH if (http or local) else None,
            )
        elif opt == "--trusted-host":
            st.finding(DEP006, f"certificate checks disabled for {shown}", line.location, line.raw)
        elif opt in ("--requirement", "--constraint"):
            self._include(opt, value, line, path, real, depth, chain)

    def _include(
        self,
        opt: str,
        value: str,
        line: _Line,
        path: str,
        real: Path | None,
        depth: int,
        chain: tuple[Path, ...],
    ) -> None:
        st = self.state
        where = line.location

        def refuse(why: str) -> None:
            st.finding(DEP013, f"{opt} {redact(value)}: {why}", where, line.raw)

        if _scheme(value) not in ("", "file") or value.startswith("file:"):
            refuse("a remote or file: URL is never fetched")
            return
        if real is None or self.root is None:
            refuse("not followed inside an archive member")
            return
        if depth + 1 > st.limits.max_include_depth:
            refuse(f"includes nested deeper than {st.limits.max_include_depth}")
            return
        note_sibling_read(f"{opt} {value}")
        if "\x00" in value:
            refuse("a NUL byte in the path")
            return
        named = Path(os.path.normpath(real.parent / value))
        try:
            target = named.resolve(strict=True)
        except (OSError, RuntimeError, ValueError):
            refuse("no such file")
            return
        assert self.root_named is not None
        if not (target.is_relative_to(self.root) and named.is_relative_to(self.root_named)):
            refuse("outside the scan root")
            return
        if target in chain:
            refuse("include cycle")
            return
        if target in self.visited:
            return  # included twice (pip reads it twice; the requirements are the same)
        self.visited.add(target)
        if not target.is_file():
            refuse("not a regular file")
            return
        rel = named.relative_to(self.root_named).as_posix()
        try:
            size = target.stat().st_size
            if size > st.limits.max_lockfile_bytes:
                refuse(f"larger than {st.limits.max_lockfile_bytes} bytes")
                return
            fh = target.open("rb")
        except OSError as exc:
            refuse(f"unreadable ({exc.strerror})")
            return
        with fh:
            if requirements_format(rel) == "pip":
                # Scanned on its own under its own name (and reported there, once): only walk
                # its includes here, so cycles and escapes through it are still seen.
                walker = _PipFile(_State(st.artifact, st.options, st.limits))
                walker.root, walker.root_named = self.root, self.root_named
                walker.visited = self.visited
                walker._file(fh, rel, named, depth + 1, (*chain, target))
                st.findings.extend(f for f in walker.state.findings if f.rule == DEP013.id)
                st.any_hash = st.any_hash or walker.state.any_hash
                st.hash_mode = st.hash_mode or walker.state.hash_mode
                return
            self._file(fh, rel, named, depth + 1, (*chain, target))

    def _requirement(self, text: str, line: _Line, *, editable: bool) -> None:
        st = self.state
        # pip: arguments until the first token that starts with "-", then per-line options.
        tokens = text.split(" ")
        cut = next((i for i, t in enumerate(tokens) if t.startswith("-")), len(tokens))
        arg = " ".join(tokens[:cut]).strip()
        hashed = False
        if cut < len(tokens):
            try:
                opts = shlex.split(" ".join(tokens[cut:]), posix=True)
            except ValueError as exc:
                st.finding(DEP011, f"bad quoting: {exc}", line.location, line.raw)
                return
            i = 0
            while i < len(opts):
                name, eq, _value = opts[i].partition("=")
                if name not in _REQ_OPTIONS_WITH_VALUE:
                    st.finding(
                        DEP011,
                        f"unknown requirement option {opts[i]!r:.60}",
                        line.location,
                        line.raw,
                    )
                    return
                i += 1 if eq else 2
                hashed = hashed or name == "--hash"
        entry = _classify(arg, line.location, line.raw, editable=editable)
        if entry is None:
            st.finding(DEP011, "not a valid requirement", line.location, line.raw)
            return
        entry.hashed = hashed
        st.add(entry)


def _classify(arg: str, location: Location, raw: str, *, editable: bool) -> Entry | None:
    """A requirement argument as pip would take it: VCS, URL, local path, or PEP 508."""
    evidence = raw
    if not arg:
        return None
    lower = arg.lower()
    if lower.startswith(VCS_PREFIXES):
        return Entry(_egg(arg), "", redact(arg), "vcs", location, evidence)
    scheme = _scheme(arg)
    if scheme == "file":
        return Entry(_egg(arg), "", redact(arg), "path", location, evidence)
    if scheme in ("http", "https", "ftp"):
        return Entry(_egg(arg), "", redact(arg), "url", location, evidence)
    if re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*@", arg) and not editable:
        return _pep508(arg, location, evidence)  # name @ url
    if (
        editable
        or "/" in arg
        or "\\" in arg
        or arg.startswith(".")
        or lower.endswith(ARCHIVE_SUFFIXES)
    ):
        return Entry(_egg(arg), "", redact(arg), "path", location, evidence)
    return _pep508(arg, location, evidence)


def _pep508(text: str, location: Location, evidence: str) -> Entry | None:
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return None
    name = str(canonicalize_name(req.name))
    if req.url is not None:
        url = req.url
        low = url.lower()
        kind = (
            "vcs" if low.startswith(VCS_PREFIXES) else "path" if low.startswith("file:") else "url"
        )
        return Entry(name, "", redact(url), kind, location, evidence)
    version = _pinned_version(req)
    spec = str(req.specifier)
    return Entry(name, version, spec, "pinned" if version else "range", location, evidence)


def _logical_lines(stream: BinaryIO, path: str, state: _State) -> Iterator[_Line]:
    """Physical lines joined on a trailing backslash, comments removed, with line offsets."""
    max_line = state.limits.max_line_bytes  # one logical line, continuations joined
    offset = 0
    number = 0
    pending: list[str] = []
    pending_at = 0
    pending_size = 0
    while True:
        raw = stream.readline(max_line + 1)
        if not raw:
            break
        start = offset
        offset += len(raw)
        number += 1
        if len(raw) > max_line:
            raise LimitExceeded(f"{path}: a line longer than {max_line} bytes", start)
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            loc = Location(path=path, offset=start)
            state.lines[(path, start)] = number
            state.finding(DEP011, "line is not UTF-8", loc, raw.decode("latin-1"))
            continue
        if start == 0:
            text = text.lstrip("\ufeff")
        if not pending:
            pending_at = start
            state.lines[(path, start)] = number
        is_comment = bool(re.match(r"^\s*#", text))
        if text.endswith("\\") and not is_comment:
            pending.append(text[:-1])
            pending_size += len(raw)
            if pending_size > max_line:
                raise LimitExceeded(f"{path}: a continued line longer than {max_line} bytes")
            continue
        pending.append(text)
        joined = "".join(pending)
        pending, pending_size = [], 0
        stripped = _COMMENT.sub("", joined).strip()
        if stripped:
            yield _Line(stripped, Location(path=path, offset=pending_at), stripped)
    if pending:
        stripped = _COMMENT.sub("", "".join(pending)).strip()
        if stripped:
            yield _Line(stripped, Location(path=path, offset=pending_at), stripped)


# -- TOML / JSON manifests and lock files ----------------------------------------------------

PYPI_SIMPLE = (
    "https://pypi.org/simple",
    "https://pypi.org/simple/",
    "https://pypi.python.org/simple",
)


class _Malformed(Exception):
    """The manifest's structure is not what its format says (→ DEP012)."""


def _parse_manifest(state: _State, fmt: str) -> None:
    art = state.artifact
    here = art.location()
    cap = state.limits.max_lockfile_bytes
    data = art.stream.read(cap + 1)
    if len(data) > cap:
        state.finding(DEP012, f"larger than {cap} bytes: not parsed", here, art.name)
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        state.finding(DEP012, f"not UTF-8 (byte {exc.start})", here, art.name)
        return
    try:
        doc: Any = json.loads(text) if fmt == "pipfile" else tomllib.loads(text)
    except (ValueError, RecursionError) as exc:  # TOMLDecodeError and JSONDecodeError
        state.finding(DEP012, f"does not parse: {exc}", here, art.name)
        return
    reader = _Manifest(state, text)
    try:
        if not isinstance(doc, dict):
            raise _Malformed("top level is not a table")
        {
            "pyproject": reader.pyproject,
            "pylock": reader.pylock,
            "uv": reader.uv_lock,
            "poetry": reader.poetry_lock,
            "pipfile": reader.pipfile_lock,
        }[fmt](doc)
    except _Malformed as exc:
        state.finding(DEP012, f"unexpected structure: {exc}", here, art.name)


def _table(value: object, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Malformed(f"{what} is not a table")
    return value


def _array(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Malformed(f"{what} is not an array")
    return value


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise _Malformed(f"{what} is not a string")
    return value


class _Manifest:
    """Readers for ``pyproject.toml``, ``pylock.toml``, ``uv.lock``, ``poetry.lock``,
    ``Pipfile.lock``: the simple, declarative parts (no tool is run, no plugin consulted)."""

    def __init__(self, state: _State, text: str) -> None:
        self.state = state
        self.text = text
        self._chars = 0
        """Character position of the last line found (entries come in file order)."""
        self._line = 1
        """Its 1-based line number."""
        self._bytes = 0
        """Its byte offset, so each lookup encodes only the text since the previous one."""

    def _where(self, needle: str) -> Location:
        """The line a string first appears on from the previous one (byte offset), for
        evidence; the file otherwise. Linear over the file for entries in file order."""
        art = self.state.artifact
        if not needle:
            return art.location()
        at = self.text.find(needle, self._chars)
        if at < 0:
            at = self.text.find(needle)
            if at < 0:
                return art.location()
            self._chars = self._bytes = 0
            self._line = 1
        line_start = self.text.rfind("\n", self._chars, at) + 1 or self._chars
        self._bytes += len(self.text[self._chars : line_start].encode("utf-8"))
        self._line += self.text.count("\n", self._chars, line_start)
        self._chars = line_start
        self.state.lines[(art.path, self._bytes)] = self._line
        return art.location(offset=self._bytes)

    def _pep508(self, text: object, what: str) -> None:
        spec = _str(text, what)
        where = self._where(spec)
        entry = _pep508(spec, where, spec)
        if entry is None:
            self.state.finding(DEP011, f"{what}: not a valid requirement", where, spec)
            return
        self.state.add(entry)

    def _locked(
        self,
        name: object,
        version: object,
        *,
        kind: str = "pinned",
        source: str = "",
        hashed: bool = False,
    ) -> None:
        pkg = _str(name, "package name")
        ver = "" if version is None else _str(version, f"{pkg} version")
        canon = str(canonicalize_name(pkg))
        where = self._where(f'"{pkg}"')
        evidence = f"{pkg} {ver} {redact(source)}".strip()
        if kind == "pinned" and not ver:
            kind = "range"
        spec = redact(source) if kind in ("url", "vcs", "path") else (f"=={ver}" if ver else "")
        entry = Entry(canon, ver if kind == "pinned" else "", spec, kind, where, evidence, hashed)
        self.state.add(entry)

    def _index(self, url: str, where_text: str, *, extra: bool) -> None:
        if url.rstrip("/") + "/" in (u.rstrip("/") + "/" for u in PYPI_SIMPLE):
            return
        where = self._where(where_text)
        http = url.lower().startswith("http://")
        if extra:
            self.state.finding(DEP003, f"extra index {redact(url)}", where, redact(url))
        else:
            self.state.finding(
                DEP004,
                f"packages come from {redact(url)}",
                where,
                redact(url),
                Severity.HIGH if http else None,
            )

    # pyproject.toml ---------------------------------------------------------------------------

    def pyproject(self, doc: dict[str, Any]) -> None:
        project = _table(doc.get("project"), "[project]")
        for req in _array(project.get("dependencies"), "project.dependencies"):
            self._pep508(req, "project.dependencies")
        optional = _table(project.get("optional-dependencies"), "project.optional-dependencies")
        for extra, reqs in sorted(optional.items()):
            for req in _array(reqs, f"optional-dependencies.{extra}"):
                self._pep508(req, f"optional-dependencies.{extra}")
        build = _table(doc.get("build-system"), "[build-system]")
        for req in _array(build.get("requires"), "build-system.requires"):
            self._pep508(req, "build-system.requires")
        groups = _table(doc.get("dependency-groups"), "[dependency-groups]")
        for group, reqs in sorted(groups.items()):
            for req in _array(reqs, f"dependency-groups.{group}"):
                if isinstance(req, dict) and "include-group" in req:
                    continue
                self._pep508(req, f"dependency-groups.{group}")
        poetry = _table(_table(doc.get("tool"), "[tool]").get("poetry"), "[tool.poetry]")
        tables = [("tool.poetry.dependencies", poetry.get("dependencies"))]
        tables.append(("tool.poetry.dev-dependencies", poetry.get("dev-dependencies")))
        for group, body in sorted(_table(poetry.get("group"), "tool.poetry.group").items()):
            tables.append((f"tool.poetry.group.{group}", _table(body, group).get("dependencies")))
        for what, table in tables:
            for name, value in sorted(_table(table, what).items()):
                if name.lower() != "python":
                    self._poetry_dep(name, value, what)
        for source in _array(poetry.get("source"), "tool.poetry.source"):
            src = _table(source, "tool.poetry.source")
            url = src.get("url")
            if isinstance(url, str):
                primary = str(src.get("priority", "")).lower() in ("primary", "default", "explicit")
                self._index(url, url, extra=not primary)

    def _poetry_dep(self, name: str, value: object, what: str) -> None:
        canon = str(canonicalize_name(name))
        where = self._where(name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                exact = re.fullmatch(r"=*\s*(\d[\w.+!-]*)", item.strip())
                kind = "pinned" if exact else "range"
                version = exact.group(1) if exact else ""
                entry = Entry(canon, version, item, kind, where, f"{name} = {item!r}")
            elif isinstance(item, dict):
                if "git" in item:
                    ref = str(item.get("rev") or item.get("tag") or item.get("branch") or "")
                    url = f"git+{item['git']}" + (f"@{ref}" if ref else "")
                    entry = Entry(canon, "", redact(url), "vcs", where, f"{name}: {redact(url)}")
                elif "path" in item:
                    entry = Entry(canon, "", str(item["path"]), "path", where, f"{name}: path")
                elif "url" in item:
                    url = redact(str(item["url"]))
                    entry = Entry(canon, "", url, "url", where, f"{name}: {url}")
                else:
                    version = str(item.get("version", ""))
                    exact = re.fullmatch(r"=*\s*(\d[\w.+!-]*)", version.strip())
                    entry = Entry(
                        canon,
                        exact.group(1) if exact else "",
                        version,
                        "pinned" if exact else "range",
                        where,
                        f"{name} = {version!r}",
                    )
            else:
                raise _Malformed(f"{what}.{name} is neither a string nor a table")
            self.state.add(entry)

    # pylock.toml (PEP 751) ---------------------------------------------------------------------

    def pylock(self, doc: dict[str, Any]) -> None:
        for raw in _array(doc.get("packages"), "packages"):
            pkg = _table(raw, "[[packages]]")
            name = pkg.get("name")
            hashed = _has_hashes(pkg.get("archive")) or _has_hashes(pkg.get("sdist"))
            hashed = hashed or any(_has_hashes(w) for w in _array(pkg.get("wheels"), "wheels"))
            if "vcs" in pkg:
                vcs = _table(pkg["vcs"], "vcs")
                url = f"git+{vcs.get('url', vcs.get('path', ''))}@{vcs.get('commit-id', '')}"
                self._locked(name, None, kind="vcs", source=url, hashed=hashed)
            elif "directory" in pkg:
                path = str(_table(pkg["directory"], "directory").get("path", ""))
                self._locked(name, None, kind="path", source=path, hashed=hashed)
            elif "archive" in pkg:
                archive = _table(pkg["archive"], "archive")
                if "path" in archive:
                    self._locked(name, None, kind="path", source=str(archive["path"]))
                else:
                    self._locked(
                        name, None, kind="url", source=str(archive.get("url", "")), hashed=hashed
                    )
            else:
                self._locked(name, pkg.get("version"), hashed=hashed)
            index = pkg.get("index")
            if isinstance(index, str):
                self._index(index, index, extra=False)

    # uv.lock -----------------------------------------------------------------------------------

    def uv_lock(self, doc: dict[str, Any]) -> None:
        for raw in _array(doc.get("package"), "package"):
            pkg = _table(raw, "[[package]]")
            name, version = pkg.get("name"), pkg.get("version")
            source = _table(pkg.get("source"), "package.source")
            hashed = _has_hashes(pkg.get("sdist"), key="hash") or any(
                _has_hashes(w, key="hash") for w in _array(pkg.get("wheels"), "wheels")
            )
            if source.get("virtual") is not None or source.get("editable") == ".":
                continue  # the project itself, not a dependency
            if "registry" in source:
                registry = _str(source["registry"], "source.registry")
                if _scheme(registry) in ("", "file"):
                    self._locked(name, version, kind="path", source=registry, hashed=hashed)
                    continue
                self._index(registry, registry, extra=False)
                self._locked(name, version, hashed=hashed)
            elif "git" in source:
                self._locked(name, None, kind="vcs", source="git+" + str(source["git"]))
            elif "url" in source:
                self._locked(name, None, kind="url", source=str(source["url"]), hashed=hashed)
            elif source.keys() & {"path", "directory", "editable"}:
                where = next(
                    str(source[k]) for k in ("path", "directory", "editable") if k in source
                )
                self._locked(name, None, kind="path", source=where)
            else:
                self._locked(name, version, hashed=hashed)

    # poetry.lock -------------------------------------------------------------------------------

    def poetry_lock(self, doc: dict[str, Any]) -> None:
        for raw in _array(doc.get("package"), "package"):
            pkg = _table(raw, "[[package]]")
            name, version = pkg.get("name"), pkg.get("version")
            hashed = any(
                isinstance(f, dict) and bool(f.get("hash"))
                for f in _array(pkg.get("files"), "files")
            )
            source = _table(pkg.get("source"), "package.source")
            stype = str(source.get("type", "")).lower()
            url = str(source.get("url", ""))
            if stype == "git":
                ref = str(source.get("resolved_reference") or source.get("reference") or "")
                self._locked(name, None, kind="vcs", source=f"git+{url}@{ref}")
            elif stype in ("directory", "file"):
                self._locked(name, None, kind="path", source=url)
            elif stype == "url":
                self._locked(name, None, kind="url", source=url, hashed=hashed)
            else:
                if stype == "legacy" and url:
                    self._index(url, url, extra=False)
                self._locked(name, version, hashed=hashed)

    # Pipfile.lock ------------------------------------------------------------------------------

    def pipfile_lock(self, doc: dict[str, Any]) -> None:
        meta = _table(doc.get("_meta"), "_meta")
        for i, raw in enumerate(_array(meta.get("sources"), "_meta.sources")):
            src = _table(raw, "_meta.sources[]")
            url = src.get("url")
            if isinstance(url, str):
                self._index(url, url, extra=i > 0)
                if src.get("verify_ssl") is False:
                    self.state.finding(
                        DEP006,
                        f"verify_ssl = false for {redact(url)}",
                        self._where(url),
                        redact(url),
                    )
        for section in ("default", "develop"):
            for name, raw in sorted(_table(doc.get(section), section).items()):
                pkg = _table(raw, f"{section}.{name}")
                hashed = bool(pkg.get("hashes"))
                if "git" in pkg:
                    ref = str(pkg.get("ref", ""))
                    url = f"git+{pkg['git']}" + (f"@{ref}" if ref else "")
                    self._locked(name, None, kind="vcs", source=url)
                elif "path" in pkg or pkg.get("editable"):
                    self._locked(name, None, kind="path", source=str(pkg.get("path", "")))
                elif "file" in pkg:
                    self._locked(name, None, kind="url", source=str(pkg["file"]), hashed=hashed)
                else:
                    raw_version = str(pkg.get("version", ""))
                    exact = raw_version[2:] if raw_version.startswith("==") else ""
                    if exact:
                        self._locked(name, exact, hashed=hashed)
                    else:
                        entry = Entry(
                            str(canonicalize_name(name)),
                            "",
                            raw_version,
                            "range",
                            self._where(f'"{name}"'),
                            f"{name} {raw_version}",
                            hashed,
                        )
                        self.state.add(entry)


def _has_hashes(value: object, key: str = "hashes") -> bool:
    return isinstance(value, dict) and bool(value.get(key))


__all__ = [
    "DEP001",
    "DEP002",
    "DEP003",
    "DEP004",
    "DEP005",
    "DEP006",
    "DEP007",
    "DEP008",
    "DEP009",
    "DEP010",
    "DEP011",
    "DEP012",
    "DEP013",
    "NEAR_MISS_ALLOWED",
    "POPULAR_ML_PACKAGES",
    "STATIC_RULES",
    "Entry",
    "RequirementsScanner",
    "near_miss",
    "redact",
]
