"""Policy: what fails a run, what is ignored (with a reason and an expiry), what is allowed.

A policy is read from ``supplychain.toml`` or ``[tool.supplychain]`` in ``pyproject.toml`` (found
by walking up from the first target, or given with ``--policy``). Unknown keys are errors: a typo
in a security policy must never silently weaken it.
"""

from __future__ import annotations

import copy
import datetime as dt
import fnmatch
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from supplychain.core.errors import ConfigError
from supplychain.core.limits import Limits
from supplychain.core.model import Finding, Report, Rule, Severity, Status, Verdict

POLICY_FILE = "supplychain.toml"
PYPROJECT = "pyproject.toml"
_TOP_KEYS = frozenset(
    {
        "fail_on",
        "strict",
        "allow_imports",
        "extra_allowed_imports",
        "ignore",
        "limits",
        "signing",
        "cache",
        "deps",
    }
)
"""``extra_allowed_imports`` is an alias of ``allow_imports`` (the engine's own name for it, and
the name rule PKL002's remediation gives); both lists are merged."""
_IGNORE_KEYS = frozenset({"rule", "path", "fingerprint", "reason", "expires"})


@dataclass(frozen=True, slots=True)
class Ignore:
    """One waiver: which findings it covers, why, and until when."""

    reason: str
    rule: str | None = None
    path: str | None = None
    """Glob over the finding's path (``fnmatch``; ``**`` and ``*`` both cross directories)."""
    fingerprint: str | None = None
    expires: dt.date | None = None

    def matches(self, finding: Finding) -> bool:
        """Does this waiver cover the finding (every given criterion must match)?"""
        if self.rule is not None and finding.rule != self.rule:
            return False
        if self.fingerprint is not None and finding.fingerprint != self.fingerprint:
            return False
        if self.path is not None:
            loc = finding.location
            full = "/".join((loc.path, *loc.member))
            if not (
                fnmatch.fnmatchcase(loc.path, self.path) or fnmatch.fnmatchcase(full, self.path)
            ):
                return False
        return True

    def is_expired(self, today: dt.date) -> bool:
        """An expired waiver no longer applies and fails the run."""
        return self.expires is not None and self.expires < today

    def describe(self) -> str:
        """Short text naming what the waiver covers."""
        parts = [f"rule={self.rule}" if self.rule else "", f"path={self.path}" if self.path else ""]
        if self.fingerprint:
            parts.append(f"fingerprint={self.fingerprint}")
        return " ".join(p for p in parts if p) or "everything"


@dataclass(frozen=True, slots=True)
class SigningPolicy:
    """``[signing]``: how model signatures (OpenSSF model-signing bundles) are verified.

    Paths are resolved against the policy file's directory, so a repository can pin its
    publisher's key next to the policy. Command-line options win over these.
    """

    public_key: str | None = None
    certificate_chain: tuple[str, ...] = ()
    require: bool = False
    """A model without a valid signature fails the run (PRV1xx HIGH)."""


_SIGNING_KEYS = frozenset({"public_key", "certificate_chain", "require"})


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """``[cache]``: the verdict cache file (``docs/cache.md``); ``--cache``/``SUPPLYCHAIN_CACHE``
    win. A relative path is resolved against the policy file's directory."""

    path: str | None = None
    timeout: float | None = None
    """Seconds to wait for another writer's lock before failing (default 30)."""


_CACHE_KEYS = frozenset({"path", "timeout"})


@dataclass(frozen=True, slots=True)
class DepsPolicy:
    """``[deps]``: the dependency audit (``docs/dependencies.md``). ``--deps-online`` /
    ``--offline``, ``--osv-url`` and ``SUPPLYCHAIN_OSV_URL`` win over it."""

    online: bool = False
    """``scan`` looks vulnerabilities up (network); ``supplychain deps`` always does."""
    osv_url: str | None = None
    """OSV-compatible ``/v1/query`` URL (a mirror for air-gapped sites); default OSV's."""
    require_hashes: bool = False
    """Every requirement must carry ``--hash`` (DEP002 HIGH otherwise)."""
    timeout: float | None = None
    """Seconds one OSV request may take (default 10)."""


_DEPS_KEYS = frozenset({"online", "osv_url", "require_hashes", "timeout"})


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything a policy file (and the CLI flags that override it) can say."""

    fail_on: Severity = Severity.HIGH
    fail_on_ids: frozenset[str] = frozenset()
    """Taxonomy selectors (``owasp:LLM02``, ``atlas:AML.T0020``): any unsuppressed finding above
    INFO whose rule is mapped to one of them also fails the run, whatever ``fail_on`` says."""
    strict: bool = False
    """Count files that could not be analysed (unknown format, missing dependency) as failures."""
    allow_imports: frozenset[str] = frozenset()
    """Extra pickle globals to allow (``module.name`` or ``module.*``)."""
    ignores: tuple[Ignore, ...] = ()
    limits: Limits = field(default_factory=Limits)
    signing: SigningPolicy = field(default_factory=SigningPolicy)
    cache: CachePolicy = field(default_factory=CachePolicy)
    deps: DepsPolicy = field(default_factory=DepsPolicy)
    source: str | None = None
    """The file this policy came from, for messages."""


_SELECTOR = re.compile(r"^(owasp):(LLM(?:0[1-9]|10))$|^(atlas):(AML\.[A-Z]{1,4}\d{4}(?:\.\d{3})?)$")
"""OWASP LLM Top 10 (2025) ids ``LLM01``..``LLM10``; MITRE ATLAS ids (``AML.T0020``,
``AML.T0010.001``, ``AML.TA0004``)."""


@dataclass(frozen=True, slots=True)
class FailOn:
    """What ``--fail-on`` / ``fail_on`` said: a severity, taxonomy selectors, or both."""

    severity: Severity | None = None
    ids: frozenset[str] = frozenset()


def parse_fail_on(text: str | Sequence[str]) -> FailOn:
    """Read ``high``, ``owasp:LLM02``, ``atlas:AML.T0020`` or a comma-separated mix.

    Raises ``ValueError`` naming the accepted forms; at most one severity may be given.
    """
    items = [text] if isinstance(text, str) else list(text)
    severity: Severity | None = None
    ids: set[str] = set()
    for item in (part.strip() for chunk in items for part in chunk.split(",")):
        if not item:
            continue
        if ":" not in item:
            if severity is not None:
                raise ValueError(f"fail-on names two severities ({severity.label}, {item})")
            severity = Severity.parse(item)
            continue
        prefix, _, ident = item.partition(":")
        normal = f"{prefix.strip().lower()}:{ident.strip().upper()}"
        if not _SELECTOR.match(normal):
            raise ValueError(
                f"unknown fail-on selector {item!r}: use a severity, owasp:LLM01..owasp:LLM10 "
                "or atlas:AML.T0000 (a MITRE ATLAS id)"
            )
        ids.add(normal)
    if severity is None and not ids:
        raise ValueError("fail-on is empty")
    return FailOn(severity, frozenset(ids))


def with_fail_on(policy: Policy, fail_on: FailOn) -> Policy:
    """The policy with a command line ``--fail-on`` applied: a severity replaces the policy's,
    selectors are added to it (a flag never weakens what the policy file demands)."""
    if fail_on.severity is not None:
        policy = replace(policy, fail_on=fail_on.severity)
    return replace(policy, fail_on_ids=policy.fail_on_ids | fail_on.ids)


def rule_selectors(rule: Rule) -> frozenset[str]:
    """The ``owasp:``/``atlas:`` selectors a rule answers to."""
    return frozenset(
        [f"owasp:{t.upper()}" for t in rule.owasp_llm] + [f"atlas:{t.upper()}" for t in rule.atlas]
    )


def _require(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{where}: {message}")


def _parse_ignore(raw: object, where: str) -> Ignore:
    _require(isinstance(raw, dict), where, "each [[ignore]] entry must be a table")
    assert isinstance(raw, dict)
    unknown = set(raw) - _IGNORE_KEYS
    _require(not unknown, where, f"unknown key(s) {sorted(unknown)} in [[ignore]]")
    reason = raw.get("reason")
    _require(isinstance(reason, str) and bool(reason.strip()), where, "every ignore needs a reason")
    selectors = {k: raw.get(k) for k in ("rule", "path", "fingerprint")}
    _require(
        any(v is not None for v in selectors.values()),
        where,
        "an ignore needs a rule, a path or a fingerprint",
    )
    for key, value in selectors.items():
        _require(value is None or isinstance(value, str), where, f"ignore {key} must be a string")
    expires = raw.get("expires")
    if isinstance(expires, str):
        try:
            expires = dt.date.fromisoformat(expires)
        except ValueError:
            raise ConfigError(f"{where}: expires must be a date (YYYY-MM-DD)") from None
    if isinstance(expires, dt.datetime):
        expires = expires.date()
    _require(expires is None or isinstance(expires, dt.date), where, "expires must be a date")
    assert isinstance(reason, str)
    rule = selectors["rule"]
    if rule is not None:
        _require(bool(rule.strip()), where, "ignore rule must not be empty")
    return Ignore(
        reason=reason.strip(),
        # Rule ids are matched case-insensitively ("pkl002" means PKL002); unknown ids are
        # rejected by ``check_rule_ids`` once the rule catalogue is known.
        rule=rule.strip().upper() if rule is not None else None,
        path=selectors["path"],
        fingerprint=selectors["fingerprint"],
        expires=expires,
    )


def _parse_limits(raw: object, where: str) -> Limits:
    _require(isinstance(raw, dict), where, "[limits] must be a table")
    assert isinstance(raw, dict)
    names = {f.name for f in fields(Limits)}
    unknown = set(raw) - names
    _require(not unknown, where, f"unknown limit(s) {sorted(unknown)}")
    try:
        return Limits(**raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _parse_signing(raw: object, where: str) -> SigningPolicy:
    _require(isinstance(raw, dict), where, "[signing] must be a table")
    assert isinstance(raw, dict)
    unknown = set(raw) - _SIGNING_KEYS
    _require(not unknown, where, f"unknown [signing] key(s) {sorted(unknown)}")
    base = Path(where).parent if where and Path(where).name else Path()

    def _path(value: object, key: str) -> str:
        _require(isinstance(value, str) and bool(value), where, f"signing.{key}: a file path")
        assert isinstance(value, str)
        return str(base / Path(value).expanduser())

    key = raw.get("public_key")
    chain = raw.get("certificate_chain", [])
    _require(isinstance(chain, list), where, "signing.certificate_chain must be a list of paths")
    require = raw.get("require", False)
    _require(isinstance(require, bool), where, "signing.require must be true or false")
    return SigningPolicy(
        public_key=None if key is None else _path(key, "public_key"),
        certificate_chain=tuple(_path(c, "certificate_chain") for c in chain),
        require=require,
    )


def _parse_cache(raw: object, where: str) -> CachePolicy:
    _require(isinstance(raw, dict), where, "[cache] must be a table")
    assert isinstance(raw, dict)
    unknown = set(raw) - _CACHE_KEYS
    _require(not unknown, where, f"unknown [cache] key(s) {sorted(unknown)}")
    path, timeout = raw.get("path"), raw.get("timeout")
    _require(path is None or (isinstance(path, str) and bool(path)), where, "cache.path: a path")
    _require(
        timeout is None
        or (isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0),
        where,
        "cache.timeout: seconds, more than 0",
    )
    if path is not None:
        base = Path(where).parent if where and Path(where).name else Path()
        path = str(base / Path(path).expanduser())
    return CachePolicy(path=path, timeout=None if timeout is None else float(timeout))


def parse_policy(data: Mapping[str, Any], where: str) -> Policy:
    """Build a ``Policy`` from a parsed TOML table, rejecting anything unknown."""
    unknown = set(data) - _TOP_KEYS
    _require(not unknown, where, f"unknown key(s) {sorted(unknown)}")
    policy = Policy(source=where)
    if "fail_on" in data:
        raw = data["fail_on"]
        _require(
            isinstance(raw, str)
            or (isinstance(raw, list) and all(isinstance(r, str) for r in raw)),
            where,
            "fail_on must be a severity name, a selector (owasp:LLM02) or a list of them",
        )
        try:
            parsed = parse_fail_on(raw)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        policy = replace(policy, fail_on_ids=parsed.ids)
        if parsed.severity is not None:
            policy = replace(policy, fail_on=parsed.severity)
    if "strict" in data:
        _require(isinstance(data["strict"], bool), where, "strict must be true or false")
        policy = replace(policy, strict=data["strict"])
    for key in ("allow_imports", "extra_allowed_imports"):
        if key not in data:
            continue
        allow = data[key]
        _require(
            isinstance(allow, list) and all(isinstance(a, str) and a for a in allow),
            where,
            f"{key} must be a list of 'module.name' strings",
        )
        policy = replace(policy, allow_imports=policy.allow_imports | frozenset(allow))
    if "ignore" in data:
        _require(isinstance(data["ignore"], list), where, "ignore must be an array of tables")
        policy = replace(policy, ignores=tuple(_parse_ignore(raw, where) for raw in data["ignore"]))
    if "limits" in data:
        policy = replace(policy, limits=_parse_limits(data["limits"], where))
    if "signing" in data:
        policy = replace(policy, signing=_parse_signing(data["signing"], where))
    if "cache" in data:
        policy = replace(policy, cache=_parse_cache(data["cache"], where))
    if "deps" in data:
        policy = replace(policy, deps=_parse_deps(data["deps"], where))
    return policy


def _parse_deps(raw: object, where: str) -> DepsPolicy:
    _require(isinstance(raw, dict), where, "[deps] must be a table")
    assert isinstance(raw, dict)
    unknown = set(raw) - _DEPS_KEYS
    _require(not unknown, where, f"unknown [deps] key(s) {sorted(unknown)}")
    for key in ("online", "require_hashes"):
        _require(isinstance(raw.get(key, False), bool), where, f"deps.{key} must be true or false")
    url = raw.get("osv_url")
    _require(url is None or (isinstance(url, str) and bool(url)), where, "deps.osv_url: a URL")
    timeout = raw.get("timeout")
    _require(
        timeout is None
        or (isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0),
        where,
        "deps.timeout: seconds, more than 0",
    )
    return DepsPolicy(
        online=raw.get("online", False),
        osv_url=url,
        require_hashes=raw.get("require_hashes", False),
        timeout=None if timeout is None else float(timeout),
    )


def load_policy(path: Path) -> Policy:
    """Read a policy file (``supplychain.toml`` or a ``pyproject.toml``)."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read policy file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    if path.name == PYPROJECT:
        tool = data.get("tool", {})
        section = tool.get("supplychain", {}) if isinstance(tool, dict) else {}
        _require(isinstance(section, dict), str(path), "[tool.supplychain] must be a table")
        return parse_policy(section, str(path))
    return parse_policy(data, str(path))


def find_policy(targets: Sequence[str | Path]) -> Path | None:
    """The nearest ``supplychain.toml`` or ``pyproject.toml`` with ``[tool.supplychain]``."""
    if not targets:
        return None
    try:
        start = Path(targets[0]).resolve()
    except (OSError, RuntimeError):  # a link loop: discovery reports it, never crash here
        start = Path(targets[0]).absolute()
    here = start if start.is_dir() else start.parent
    for directory in (here, *here.parents):
        candidate = directory / POLICY_FILE
        if candidate.is_file():
            return candidate
        pyproject = directory / PYPROJECT
        if pyproject.is_file():
            try:
                with pyproject.open("rb") as fh:
                    tool = tomllib.load(fh).get("tool", {})
            except (OSError, tomllib.TOMLDecodeError):
                continue
            if isinstance(tool, dict) and "supplychain" in tool:
                return pyproject
    return None


def check_rule_ids(policy: Policy, known: Iterable[str]) -> None:
    """Reject an ignore naming a rule that does not exist: it would silently match nothing."""
    ids = frozenset(r.upper() for r in known)
    for waiver in policy.ignores:
        if waiver.rule is not None and waiver.rule not in ids:
            close = sorted(i for i in ids if i[:3] == waiver.rule[:3])[:5]
            hint = f" (known {waiver.rule[:3]} rules: {', '.join(close)})" if close else ""
            raise ConfigError(
                f"{policy.source or 'policy'}: [[ignore]] names unknown rule {waiver.rule!r}"
                f"{hint}; run `supplychain rules` for the list"
            )


def analysed_files(report: Report) -> int:
    """Files on disk that were read, identified and handled: scanned, or a benign skip (text).

    A run where this is 0 judged nothing (empty directory, only unknown formats, only links out
    of the root…), so it can never pass: fail closed.
    """
    on_disk = {r.path for r in report.files if not r.member}
    handled = {
        r.path
        for r in report.results
        if not r.member
        and r.path in on_disk
        and (r.status is Status.SCANNED or (r.status is Status.SKIPPED and r.expected))
    }
    return len(handled)


def _suppress(findings: Iterable[Finding], ignores: Sequence[Ignore]) -> list[Finding]:
    out: list[Finding] = []
    for finding in findings:
        waiver = next((w for w in ignores if w.matches(finding)), None)
        if waiver is None:
            out.append(finding)
            continue
        # NOTE: not ``replace``: that re-runs __post_init__, escaping the already-escaped
        # evidence a second time (and so changing the fingerprint of a suppressed finding).
        marked = copy.copy(finding)
        object.__setattr__(marked, "suppressed", waiver.reason)
        out.append(marked)
    return out


def apply(report: Report, policy: Policy, today: dt.date | None = None) -> Report:
    """Mark waived findings as suppressed and decide the verdict (fail closed)."""
    today = today or dt.datetime.now(dt.UTC).date()
    live = [w for w in policy.ignores if not w.is_expired(today)]
    expired = [w for w in policy.ignores if w.is_expired(today)]
    findings = _suppress(report.findings, live)
    reasons: list[str] = []
    violations = [f for f in findings if f.suppressed is None and f.severity >= policy.fail_on]
    if violations:
        reasons.append(f"{len(violations)} finding(s) at or above {policy.fail_on.label}")
    if policy.fail_on_ids:
        mapped = {
            r.id: hits for r in report.rules if (hits := rule_selectors(r) & policy.fail_on_ids)
        }
        selected = [
            f
            for f in findings
            if f.suppressed is None
            and f.severity > Severity.INFO
            and f.severity < policy.fail_on
            and f.rule in mapped
        ]
        if selected:
            names = sorted(set().union(*(mapped[f.rule] for f in selected)))
            reasons.append(f"{len(selected)} finding(s) mapped to {', '.join(names)}")
            violations += selected
    reasons.extend(
        f"ignore ({w.describe()}) expired on {w.expires}: renew or remove it" for w in expired
    )
    if analysed_files(report) == 0:
        reasons.append("nothing was analysed: no file in a format any scanner handles")
    failed = [r for r in report.results if r.status is Status.FAILED]
    if failed:
        reasons.append(f"{len(failed)} file(s) could not be analysed (failed)")
    errors = len(failed)
    if policy.strict:
        unscanned = [r for r in report.results if r.status is Status.SKIPPED and not r.expected]
        if unscanned:
            reasons.append(f"{len(unscanned)} file(s) skipped (--strict)")
            errors += len(unscanned)
    verdict = Verdict(
        passed=not reasons,
        fail_on=policy.fail_on,
        reasons=tuple(reasons),
        violations=len(violations) + len(expired),
        errors=errors,
    )
    return replace(report, findings=tuple(findings), verdict=verdict)
