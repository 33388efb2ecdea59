"""Pickle analysis: raw, joblib, dill/cloudpickle and stacked pickles, judged by what they call.

Shared by the pickle scanner and every scanner that finds pickles in its own layout (legacy
torch streams), so format scanners never import each other.

The symbolic machine (``scanners.pickle_vm``) reports every import and call; this module turns
them into findings with the allowlist (``scanners.allowlist``). One finding per distinct import
(with the first call on it as evidence, at that call's offset), one per suspicious call shape,
one per stream break. Severity follows what the loader would do (``docs/pickle-analysis.md``):

* a denylisted global is CRITICAL whether or not it is called (PKL001);
* a global outside the allowlist that the stream *calls* (REDUCE/INST/OBJ, with or without
  arguments) is HIGH (PKL010); one that is only referenced, or a class only rebuilt through
  NEWOBJ + BUILD or the copyreg helpers (user classes, namedtuples), is MEDIUM (PKL002);
* callees are resolved before they are judged: wrappers (``functools.partial``) to the callable
  they bind, import helpers (``import_module``/``getattr``/``resolve_name``/``attrgetter``/
  ``methodcaller``) to the attribute they reach, a ``__setstate__`` planted through BUILD
  state to the callable planted;
* bytes handed to a deserialiser (``pickle.loads``, ``torch.load``…) are decoded as the loader
  would read them (literal, or built by ``codecs``/``base64``/``zlib``/``bytes``/``BytesIO``
  calls) and analysed: inline as a nested pickle (member ``pickle.loads@<offset>``) or handed to
  the engine as a child artifact; what cannot be decoded is PKL005 (HIGH).
"""

from __future__ import annotations

import base64
import binascii
import bz2
import io
import lzma
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Final

from scanners.allowlist import (
    ALLOW_EXACT,
    BENIGN_STATE_DUNDERS,
    CALLERS,
    IMPORT_HELPERS,
    LOADERS,
    WRAPPERS,
    Classification,
    classify,
)
from scanners.base import Artifact, ScanContext
from scanners.pickle_vm import (
    Blob,
    Call,
    CallResult,
    ComputedImport,
    Extension,
    Global,
    Import,
    PersId,
    PickleMachine,
    Stop,
    StreamError,
    TrailingData,
    Unknown,
    canonical_module,
    canonical_parts,
    iter_refs,
    render,
)
from supplychain.core.errors import LimitExceeded
from supplychain.core.model import ArtifactKind, Confidence, Finding, Rule, Severity
from supplychain.core.rules import make_rule

_CONVERT: Final = (
    "Do not load it. If the model is needed, load it once inside an isolated, network-less "
    "sandbox with torch.load with weights_only set (or a restricted Unpickler) and re-save the "
    "weights as safetensors; prefer a publisher that ships safetensors."
)
_REFS: Final = (
    "https://docs.python.org/3/library/pickle.html#restricting-globals",
    "https://github.com/mmaitre314/picklescan/issues/66",
)

PKL001 = make_rule(
    "PKL001",
    "Dangerous import or call in pickle",
    Severity.CRITICAL,
    "The pickle imports (and usually calls) a callable that runs commands, touches files or "
    "the network, imports modules, builds code objects, walks attributes or deserialises "
    "nested data. Unpickling executes it: this is arbitrary code execution on load.",
    _CONVERT,
    cwe=502,
    references=(*_REFS, "https://github.com/protectai/modelscan/issues/338"),
)
PKL002 = make_rule(
    "PKL002",
    "Import outside the ML allowlist",
    Severity.MEDIUM,
    "The pickle imports a global that ordinary ML artifacts (PyTorch, NumPy, scikit-learn, "
    "joblib, pandas) do not use, but only references it (an argument, a dict value) or "
    "rebuilds an instance of it through NEWOBJ + BUILD or the copyreg helpers, as whole-module "
    "saves of user classes and namedtuples do. Loading it still imports that module (its "
    "import-time code runs), so it is reported; a call with arguments is PKL010 (high).",
    "Check that the module is yours and expected; if so, list it under allow_imports in "
    'supplychain.toml (allow_imports = ["module.name"] or ["module.*"]). Otherwise '
    "convert the weights to safetensors in an isolated environment.",
    cwe=502,
    references=_REFS,
)
PKL003 = make_rule(
    "PKL003",
    "Computed import (STACK_GLOBAL operands are not constants)",
    Severity.CRITICAL,
    "STACK_GLOBAL takes its module and name from the stack. Here they are not string "
    "constants but values computed at load time (call results, extension lookups), which "
    "hides what is imported from every static scanner. No legitimate pickler emits this.",
    _CONVERT,
    cwe=502,
    references=("https://github.com/msaad00/agent-bom/issues/3326",),
)
PKL004 = make_rule(
    "PKL004",
    "Broken pickle stream",
    Severity.HIGH,
    "The pickle stops parsing before its end (truncated, invalid opcode, stack underflow). "
    "Unpicklers execute everything before the break, so attackers break the stream right "
    "after a payload to make scanners give up (nullifAI). Critical when dangerous imports "
    "came before the break.",
    "Treat the file as hostile: re-download it from the publisher and compare digests; never "
    "load a file that does not parse.",
    cwe=20,
    references=("https://safeguard.sh/resources/blog/nullifai-broken-pickles-huggingface-attack",),
)
PKL005 = make_rule(
    "PKL005",
    "Nested payload that cannot be analysed",
    Severity.HIGH,
    "Bytes are handed to a deserialiser at load time (pickle.loads, torch.load of bytes…) but "
    "they are computed, out of band or nested too deeply to analyse here.",
    _CONVERT,
    cwe=502,
    references=("https://github.com/protectai/modelscan/issues/267",),
)
PKL006 = make_rule(
    "PKL006",
    "Extension-registry lookup (EXT opcode)",
    Severity.HIGH,
    "EXT1/EXT2/EXT4 fetch a callable from the loading process's copyreg extension registry "
    "by number. What it resolves to depends on the victim's process, not on the file, so "
    "it cannot be judged statically; ordinary ML pickles never use it.",
    _CONVERT,
    cwe=502,
)
PKL007 = make_rule(
    "PKL007",
    "Pickle opcodes hidden in data",
    Severity.MEDIUM,
    "Bytes that the normal loader skips (after the final STOP, or inside joblib raw array "
    "data) decode as pickle opcodes importing globals. A different loader (pickle.load on a "
    "joblib file, a loop of pickle.load calls) would execute them.",
    "Find out why the file carries extra pickle data; rebuild it from a trusted source.",
    cwe=506,
)
PKL008 = make_rule(
    "PKL008",
    "Call through a computed callable or on an imported object",
    Severity.HIGH,
    "A REDUCE/NEWOBJ/OBJ calls something that is not an imported global (the result of "
    "another call, an extension lookup, data from the memo), or BUILD/SETITEMS/APPENDS "
    "mutate an imported class or module. These are gadget-chain shapes (getattr chains, "
    "Exception-Oriented Programming); ordinary pickles only call imported classes.",
    _CONVERT,
    cwe=502,
    references=("https://arxiv.org/abs/2508.19774",),
)
PKL010 = make_rule(
    "PKL010",
    "Call outside the ML allowlist",
    Severity.HIGH,
    "The pickle calls a global that ordinary ML artifacts do not use (REDUCE, INST or OBJ, "
    "usually with arguments the file chooses), directly or through a wrapper "
    "(functools.partial), a __setstate__ planted through BUILD state or an import helper. "
    "Published gadgets that no denylist knew (profiler helpers that run a code string, "
    "config loaders that unpickle their argument, private helpers that run a shell command, "
    "logging handlers that create files) all have this shape, so an unknown call fails the "
    "default gate. Only referencing an unknown global, or rebuilding an unknown class through "
    "NEWOBJ + BUILD or copyreg, is PKL002 (medium).",
    "Check what the callable does with these arguments. If it is your own code and expected, "
    'list it under allow_imports in supplychain.toml (allow_imports = ["module.name"]); '
    "otherwise do not load the file and convert the weights to safetensors in an isolated "
    "environment.",
    cwe=502,
    references=(*_REFS, "https://github.com/protectai/modelscan/issues/338"),
)
PKL009 = make_rule(
    "PKL009",
    "Allowlisted callable used with unexpected arguments",
    Severity.HIGH,
    "An allowlisted helper is called with arguments that ordinary pickles never pass "
    "(codecs.encode on non-strings, a dangerous callable as argument of copyreg or "
    "collections helpers), turning a benign helper into a gadget.",
    _CONVERT,
    cwe=502,
)

RULES: Final[tuple[Rule, ...]] = (
    PKL001,
    PKL002,
    PKL003,
    PKL004,
    PKL005,
    PKL006,
    PKL007,
    PKL008,
    PKL009,
    PKL010,
)

MAX_TRACKED_IMPORTS: Final = 2000
"""Distinct import names remembered per pickle; more are summarised in one finding."""
MAX_SHAPE_FINDINGS: Final = 20
"""PKL008/PKL009 findings per pickle before they are only counted."""
MAX_NESTED: Final = 4096
"""Nested payloads analysed per pickle (``pickle.dumps`` of a model writes one
``torch.storage._load_from_bytes`` per storage); more are a PKL005 finding, never skipped."""
DILL_CODE_TYPES: Final = frozenset(
    {
        "CodeType",
        "FunctionType",
        "LambdaType",
        "MethodType",
        "ModuleType",
        "CellType",
        "BuiltinFunctionType",
        "BuiltinMethodType",
        "GeneratorType",
        "FrameType",
        "TracebackType",
        "PartialType",
        "SuperType",
        "ClassMethodDescriptorType",
        "MethodWrapperType",
        "WrapperDescriptorType",
        "MemberDescriptorType",
        "GetSetDescriptorType",
    }
)


@dataclass(slots=True)
class _ImportRecord:
    """What one distinct global did in a pickle: first import, first call, counts."""

    qualname: str
    verdict: Classification
    offset: int
    imports: int = 0
    calls: int = 0
    benign_calls: int = 0
    """Calls of an import helper (``getattr``) that resolved to an allowlisted target."""
    rebuilds: int = 0
    called_unvetted: bool = False
    evidence: str = ""
    call_offset: int | None = None
    escalated: Severity | None = None
    why: str = ""


@dataclass(slots=True)
class _Nested:
    """A value handed to a deserialiser, decoded and analysed after the walk."""

    offset: int
    loader: str
    mode: str
    """``pickle`` (walked inline) or ``file`` (handed to the engine); see ``LOADERS``."""
    value: object


@dataclass(slots=True)
class _Walk:
    """Accumulated facts of one walk over one stream."""

    records: dict[str, _ImportRecord] = field(default_factory=dict)
    untracked: int = 0
    shapes: int = 0
    nested: list[_Nested] = field(default_factory=list)
    critical_seen: bool = False
    methods: dict[int, CallResult] = field(default_factory=dict)
    """Bound methods fetched with ``getattr`` (judged quiet), by ``id``: passing one to a call
    at load time is reported, since the callee may call it."""
    nested_over: int = 0
    """Deserialiser calls beyond ``MAX_NESTED`` (reported, not analysed)."""
    planted: dict[int, tuple[object, dict[str, object]]] = field(default_factory=dict)
    """Callables planted as attributes through BUILD state, by ``id`` of the object (which is
    kept alive next to them so the ``id`` stays unique)."""


@dataclass(frozen=True, slots=True)
class _Module:
    """A module object obtained at load time (``importlib.import_module('os')``)."""

    name: str


@dataclass(frozen=True, slots=True)
class _Target:
    """What a call really invokes once wrappers and import helpers are seen through."""

    ref: Global
    bound: tuple[object, ...]
    """Arguments bound by a wrapper (``partial(f, 1)``), passed before the call's own."""
    via: str
    """How it was reached (``functools.partial``, ``builtins.getattr``…); empty if direct."""
    helper_unsafe: bool
    """Reached through an import helper that is not allowlisted (PKL008 shape as well)."""
    own_args: bool = True
    """Whether the call's own arguments reach the target (not for ``methodcaller(...)(obj)``,
    where the argument is the object whose method runs)."""


MAX_PLANTED: Final = 1000
"""Objects with planted callables remembered per pickle."""
MAX_RESOLVE_DEPTH: Final = 8
PLANT_METHODS: Final[dict[str, tuple[str, ...]]] = {
    # Methods the loader itself looks up on an object it builds: BUILD calls ``__setstate__``;
    # APPENDS calls ``extend`` (or ``append``); ADDITEMS calls ``add``.
    "BUILD": ("__setstate__",),
    "APPENDS": ("extend", "append"),
    "ADDITEMS": ("add",),
}


def _severity_of(rec: _ImportRecord) -> Severity | None:
    base = rec.verdict.severity
    if rec.escalated is not None and (base is None or rec.escalated > base):
        return rec.escalated
    return base


def _computed(value: object) -> bool:
    """A callee the loader resolves at load time (call result, extension, persistent id).

    Plain data as a callee makes the real loader raise before anything runs: not reported.
    """
    t = type(value)
    return t is CallResult or t is Unknown or t is PersId


def _is_symbolic(value: object) -> bool:
    """True for values that may be callables (imports, call results, unknowns)."""
    t = type(value)
    return t is Global or t is CallResult or t is Unknown


def scan_pickle(
    artifact: Artifact,
    ctx: ScanContext,
    *,
    stream: BinaryIO | None = None,
    start: int = 0,
    end: int | None = None,
) -> Iterator[Finding]:
    """Findings for the pickle(s) in ``stream[start:end]`` (default: the artifact's stream).

    Other scanners (torch zip members, NumPy object arrays) call this on their own artifacts.
    Raises ``LimitExceeded`` after yielding every finding gathered before the cap.
    """
    source = artifact.stream if stream is None else stream
    walk = _Walk()
    machine = PickleMachine(source, ctx.limits, start=start, end=end)
    extra = ctx.extra_allowed_imports
    pending: list[Finding] = []
    limit_hit: LimitExceeded | None = None
    try:
        for ev in machine.walk():
            pending.extend(_on_event(ev, artifact, walk, extra))
            if pending:
                yield from pending
                pending.clear()
    except LimitExceeded as exc:
        limit_hit = exc
    # Nested payloads first: what they do is named in the loader's own finding.
    for job in walk.nested:
        inner = list(_nested(job, artifact, ctx, source))
        yield from inner
        _note_inner(walk, job, inner)
    if walk.nested_over:
        yield artifact.finding(
            PKL005,
            f"{walk.nested_over} more nested payloads beyond {MAX_NESTED} were not analysed",
            evidence=f"more than {MAX_NESTED} deserialiser calls",
        )
    yield from _flush(artifact, walk)
    if limit_hit is not None:
        raise limit_hit


def _note_inner(walk: _Walk, job: _Nested, inner: list[Finding]) -> None:
    """Name the worst thing a nested payload does in the finding of the loader that reads it."""
    rec = walk.records.get(job.loader)
    worst = max(inner, key=lambda f: f.severity, default=None)
    if rec is None or worst is None or worst.severity < Severity.HIGH:
        return
    what = worst.evidence or worst.message
    note = f"the payload it reads at offset {job.offset} does {what[:120]} ({worst.rule})"
    base = rec.why or ("deserialises its argument" if rec.verdict.allowed else rec.verdict.reason)
    rec.why = f"{base}; {note}"
    if " → payload: " not in rec.evidence:
        rec.evidence = f"{rec.evidence} → payload: {what[:120]}"
    if worst.severity > (_severity_of(rec) or Severity.INFO):
        rec.escalated = worst.severity


def _on_event(
    ev: object, artifact: Artifact, walk: _Walk, extra: frozenset[str]
) -> Iterator[Finding]:
    match ev:
        case Import(offset=off, ref=ref):
            rec = _record(walk, ref, extra)
            if rec is not None:
                rec.imports += 1
        case Call():
            yield from _on_call(ev, artifact, walk, extra)
        case ComputedImport(offset=off, module=module, name=name):
            walk.critical_seen = True
            yield artifact.finding(
                PKL003,
                "STACK_GLOBAL operands are computed at load time, not string constants",
                evidence=f"STACK_GLOBAL({render(module, budget=60)}, {render(name, budget=60)})",
                offset=off,
            )
        case Extension(offset=off, code=code):
            yield artifact.finding(
                PKL006,
                f"EXT opcode looks up extension code {code} in the loader's copyreg registry",
                evidence=f"copyreg._extension_registry[{code}]",
                offset=off,
            )
        case StreamError(offset=off, message=msg, index=idx):
            severity = Severity.CRITICAL if walk.critical_seen else Severity.HIGH
            where = f" (stacked pickle #{idx + 1})" if idx else ""
            yield artifact.finding(
                PKL004,
                f"pickle stream broken{where}: {msg}; everything before it runs on load",
                evidence=msg,
                offset=off,
                severity=severity,
            )
        case TrailingData(offset=off, size=size, imports=imps, context=context):
            yield artifact.finding(
                PKL007,
                f"{size} bytes {context} decode as pickle opcodes importing {', '.join(imps)}",
                evidence=", ".join(imps),
                offset=off,
                severity=Severity.HIGH if _any_denied(imps) else Severity.MEDIUM,
                confidence=Confidence.MEDIUM,
            )
        case Stop():
            pass
        case _:
            pass


def _shape(
    walk: _Walk,
    artifact: Artifact,
    message: str | Callable[[], str],
    *,
    evidence: str,
    offset: int,
    rule: Rule = PKL008,
    escalate: bool = True,
    severity: Severity | None = None,
) -> Iterator[Finding]:
    """The one capped call-shape finding: at most ``MAX_SHAPE_FINDINGS`` per pickle (PKL008 and
    PKL009 share the cap). ``escalate`` makes it HIGH, or CRITICAL once a critical callable was
    seen in the stream; otherwise ``severity`` (``None``: the rule's default). A message that
    renders values is passed as a callable, built only under the cap (rendering is not free).
    """
    if walk.shapes >= MAX_SHAPE_FINDINGS:
        return
    walk.shapes += 1
    if escalate:
        severity = Severity.CRITICAL if walk.critical_seen else Severity.HIGH
    text = message if isinstance(message, str) else message()
    yield artifact.finding(rule, text, evidence=evidence, offset=offset, severity=severity)


def _any_denied(names: tuple[str, ...]) -> bool:
    for qualname in names:
        module, _, name = qualname.rpartition(".")
        verdict = classify(*canonical_parts(module, name))
        if verdict.severity is not None and verdict.severity >= Severity.HIGH:
            return True
    return False


def _record(walk: _Walk, ref: Global, extra: frozenset[str]) -> _ImportRecord | None:
    qualname = ref.qualname
    rec = walk.records.get(qualname)
    if rec is None:
        if len(walk.records) >= MAX_TRACKED_IMPORTS:
            walk.untracked += 1
            return None
        module, name = canonical_parts(ref.module, ref.name)
        verdict = classify(module, name, extra)
        rec = _ImportRecord(qualname, verdict, ref.offset, evidence=qualname)
        walk.records[qualname] = rec
        if verdict.severity is Severity.CRITICAL:
            walk.critical_seen = True
    return rec


def _note_call(rec: _ImportRecord, kind: str, args: object, offset: int, shown: str) -> None:
    """Count a call of ``rec``; a REDUCE/INST/OBJ call of a non-allowlisted global is HIGH.

    Zero-argument calls count too: ``somepkg.cli.main()`` reads its input from elsewhere, and a
    call runs code whatever its arguments (only NEWOBJ, a rebuild, stays MEDIUM).
    """
    if kind in ("NEWOBJ", "NEWOBJ_EX"):
        # cls.__new__(cls, *args): how the pickler rebuilds instances of ordinary classes.
        rec.rebuilds += 1
        if rec.call_offset is None:
            rec.call_offset = offset
            rec.evidence = shown
        return
    rec.calls += 1
    verdict = rec.verdict
    unvetted = verdict.severity is Severity.MEDIUM or verdict.rebuild_only
    if unvetted and not rec.called_unvetted:
        rec.called_unvetted = True
        rec.escalated = Severity.HIGH
        rec.call_offset = offset
        rec.evidence = shown
        return
    if rec.call_offset is None:
        rec.call_offset = offset
        rec.evidence = shown


def _on_call(ev: Call, artifact: Artifact, walk: _Walk, extra: frozenset[str]) -> Iterator[Finding]:
    func = ev.func
    kind = ev.kind
    shown = _render_call(ev)
    if kind in ("BUILD", "APPENDS", "SETITEMS", "ADDITEMS"):
        if kind == "BUILD":
            yield from _on_build(ev, artifact, walk, extra, shown)
        else:
            yield from _on_mutation(ev, artifact, walk, extra, shown)
        if type(func) is not Global:
            _note_dangerous_arguments(ev, walk, shown)
        return
    if type(func) is Global:
        rec = _record(walk, func, extra)
        if rec is not None and _benign_lookup(ev, func, extra):
            # getattr(zoneinfo.ZoneInfo, '_unpickle'): an attribute the allowlist names.
            rec.benign_calls += 1
        elif rec is not None and _method_lookup(ev, func, walk, extra, shown):
            # getattr(<object built here>, 'method'): a bound method (hooks, callbacks).
            rec.benign_calls += 1
        elif rec is not None:
            _note_call(rec, kind, ev.args, ev.offset, shown)
            yield from _check_arguments(ev, rec, artifact, walk)
        yield from _special_callee(ev, func.qualname, artifact, walk, extra)
        yield from _bound_method_arguments(ev, func.qualname, artifact, walk, shown)
    else:
        target = _callee(func, ev.args)
        if target is not None:
            yield from _resolved_call(ev, target, artifact, walk, extra)
        elif _computed(func):
            what = "the result of a call" if type(func) is CallResult else None
            yield from _shape(
                walk,
                artifact,
                lambda: f"{kind} calls {what or render(func, budget=60)}, not an imported global",
                evidence=shown,
                offset=ev.offset,
            )
    _note_dangerous_arguments(ev, walk, shown)


def _bound_method_arguments(
    ev: Call, qualname: str, artifact: Artifact, walk: _Walk, shown: str
) -> Iterator[Finding]:
    """A bound method handed to a call at load time: the callee may call it right away
    (``pandas.core.common.pipe(obj, method)``). Wrappers only bind it, so they are fine."""
    if not walk.methods or qualname in WRAPPERS:
        return
    for ref in iter_refs(ev.args):
        if type(ref) is CallResult and walk.methods.get(id(ref)) is ref:
            yield from _shape(
                walk,
                artifact,
                (
                    f"{ev.kind} passes the bound method {render(ref, budget=60)} to {qualname},"
                    " which may call it at load time"
                ),
                evidence=shown,
                offset=ev.offset,
            )
            return


def _benign_lookup(ev: Call, func: Global, extra: frozenset[str]) -> bool:
    """A ``getattr(<global>, 'name')`` call whose result is itself allowlisted."""
    if func.qualname != "builtins.getattr" or ev.kind != "REDUCE" or ev.result is None:
        return False
    target = _resolve(ev.result)
    if not isinstance(target, Global):
        return False
    verdict = classify(*canonical_parts(target.module, target.name), extra)
    return verdict.allowed and not verdict.rebuild_only


def _method_lookup(ev: Call, func: Global, walk: _Walk, extra: frozenset[str], shown: str) -> bool:
    """``getattr(obj, 'name')`` on an object this pickle built: how bound methods pickle.

    Fetching a plain method runs no code; a property or ``__getattr__`` of the object's class
    does. So the lookup is judged as a call into that class: quiet for an allowlisted class,
    PKL010 (HIGH) for one outside the allowlist. Calling the bound method at load time is a
    call through a computed value (PKL008). Special names stay with the denylisted getattr.
    """
    if func.qualname != "builtins.getattr" or ev.kind != "REDUCE":
        return False
    args = ev.args
    if type(args) is not tuple or len(args) != 2:
        return False
    obj, name = args
    if type(obj) is not CallResult or type(name) is not str or not name.isidentifier():
        return False
    if name.startswith("__") or type(obj.func) is not Global:
        return False
    if obj.func.qualname in IMPORT_HELPERS or _resolve(obj) is not None:
        return False  # a module or attribute fetched by name, not an instance
    cls = _record(walk, obj.func, extra)
    if cls is None:
        return False
    if not cls.verdict.allowed or cls.verdict.rebuild_only:
        _note_call(cls, "REDUCE", (name,), ev.offset, f"{shown} (attribute code of the class)")
    quiet = cls.verdict.severity is None or cls.verdict.severity < Severity.CRITICAL
    if quiet and ev.result is not None and len(walk.methods) < MAX_PLANTED:
        walk.methods[id(ev.result)] = ev.result
    return quiet


def _note_dangerous_arguments(ev: Call, walk: _Walk, shown: str) -> None:
    """Dangerous callables passed as arguments (``partial(os.system)``): this call is evidence."""
    for ref in iter_refs(ev.args):
        if type(ref) is Global:
            inner = walk.records.get(ref.qualname)
            if inner is not None and inner.call_offset is None:
                sev = _severity_of(inner)
                if sev is not None and sev >= Severity.HIGH:
                    inner.call_offset = ev.offset
                    inner.evidence = shown


def _resolved_call(
    ev: Call, target: _Target, artifact: Artifact, walk: _Walk, extra: frozenset[str]
) -> Iterator[Finding]:
    """A call whose callee was resolved through a wrapper, import helper or planted method."""
    args = ev.args
    if not target.own_args:
        args = ()
    full: object = (*target.bound, *args) if type(args) is tuple else args
    ref = Global(target.ref.module, target.ref.name, ev.offset)
    shown = f"{render(ref)}({_render_args(full)}) via {target.via}"
    rec = _record(walk, ref, extra)
    if rec is not None:
        kind = "REDUCE" if ev.kind in ("BUILD", "APPENDS", "ADDITEMS") else ev.kind
        _note_call(rec, kind, full, ev.offset, shown)
        if (_severity_of(rec) or Severity.INFO) >= Severity.HIGH and rec.calls == 1:
            rec.call_offset = ev.offset
            rec.evidence = shown
        if rec.verdict.severity is Severity.CRITICAL:
            walk.critical_seen = True
    _queue_nested(ev.kind, ev.offset, ref.qualname, full, walk)
    quiet = rec is not None and rec.verdict.allowed and not rec.verdict.rebuild_only
    if target.helper_unsafe and not quiet:
        yield from _shape(
            walk,
            artifact,
            f"{ev.kind} calls {ref.qualname}, reached through {target.via} at load time",
            evidence=shown,
            offset=ev.offset,
        )


def _special_callee(
    ev: Call, qualname: str, artifact: Artifact, walk: _Walk, extra: frozenset[str]
) -> Iterator[Finding]:
    """Callees whose arguments are themselves called or deserialised."""
    args = ev.args
    _queue_nested(ev.kind, ev.offset, qualname, args, walk)
    if ev.kind not in ("REDUCE", "INST", "OBJ") or type(args) is not tuple:
        return
    idx = CALLERS.get(qualname)
    called: object = None
    call_args: tuple[object, ...] = ()
    if idx is not None and len(args) > idx:
        # functools.reduce(f, items): f(a, b) runs now.
        called, call_args = args[idx], (Unknown("items"), Unknown("items"))
    elif qualname == "copyreg._reconstructor" and len(args) == 3 and args[2] is not None:
        # _reconstructor(cls, base, state) runs base.__init__(obj, state) unless base is object.
        base = args[1]
        if not (type(base) is Global and base.qualname == "builtins.object"):
            called, call_args = base, (Unknown("obj"), args[2])
    if called is None:
        return
    target = _callee(called, call_args)
    if target is None:
        yield from _shape(
            walk,
            artifact,
            lambda: f"{qualname} calls {render(called, budget=60)}, not an imported global",
            evidence=_render_call(ev),
            offset=ev.offset,
        )
        return
    via = f"{qualname}" + (f" and {target.via}" if target.via else "")
    inner = _Target(target.ref, target.bound, via, target.helper_unsafe, target.own_args)
    synthetic = Call(ev.offset, "REDUCE", called, call_args)
    yield from _resolved_call(synthetic, inner, artifact, walk, extra)


def _on_build(
    ev: Call, artifact: Artifact, walk: _Walk, extra: frozenset[str], shown: str
) -> Iterator[Finding]:
    """BUILD: ``__setstate__`` (or a ``__dict__`` update) on the object below the state."""
    target = ev.func
    args = ev.args
    state = args[0] if type(args) is tuple and args else None
    if type(target) is Global:
        # Mutating an imported class or module itself: monkeypatching at load time.
        yield from _shape(
            walk,
            artifact,
            f"BUILD mutates the imported object {target.qualname} itself",
            evidence=shown,
            offset=ev.offset,
            escalate=False,
        )
        return
    if type(target) is not CallResult:
        if _computed(target):
            yield from _shape(
                walk,
                artifact,
                lambda: f"BUILD calls {render(target, budget=60)}, not an object the loader built",
                evidence=shown,
                offset=ev.offset,
            )
        return
    yield from _invoke_planted(ev, target, (state,), artifact, walk, extra)
    yield from _plant(ev, target, state, artifact, walk, shown)


def _on_mutation(
    ev: Call, artifact: Artifact, walk: _Walk, extra: frozenset[str], shown: str
) -> Iterator[Finding]:
    """APPENDS/SETITEMS/ADDITEMS on something that is not a plain container."""
    target = ev.func
    if type(target) is Global:
        yield from _shape(
            walk,
            artifact,
            f"{ev.kind} mutates the imported object {target.qualname} itself",
            evidence=shown,
            offset=ev.offset,
            escalate=False,
        )
        return
    if type(target) is CallResult:
        # The loader calls extend/__setitem__/add on an object it built: ordinary, unless
        # that method was planted as an instance attribute.
        args = ev.args
        items: object = list(args) if type(args) is tuple else args
        yield from _invoke_planted(ev, target, (items,), artifact, walk, extra)
        return
    if _computed(target):
        yield from _shape(
            walk,
            artifact,
            lambda: f"{ev.kind} calls {render(target, budget=60)}, not an imported global",
            evidence=shown,
            offset=ev.offset,
        )


def _state_items(state: object) -> Iterator[tuple[str, object]]:
    """(name, value) pairs a BUILD state sets: the ``__dict__`` part and the slot part."""
    parts = state if type(state) is tuple and len(state) == 2 else (state,)
    for part in parts:
        if type(part) is dict:
            for key, value in part.items():
                if type(key) is str:
                    yield key, value


def _maybe_callable(value: object) -> bool:
    """Whether a state value may be a callable: an import, a computed value, a wrapper result.

    Objects built by allowlisted value constructors (``set([...])`` under protocol 2 in
    pydantic's ``__pydantic_fields_set__``) are data.
    """
    t = type(value)
    if t is Global or t is Unknown:
        return True
    if t is not CallResult:
        return False
    func = value.func  # type: ignore[attr-defined]
    if type(func) is not Global:
        return True
    if func.qualname in WRAPPERS or func.qualname in IMPORT_HELPERS:
        return True
    return not classify(*canonical_parts(func.module, func.name)).allowed


def _plant(
    ev: Call, target: CallResult, state: object, artifact: Artifact, walk: _Walk, shown: str
) -> Iterator[Finding]:
    """Remember callables set as attributes; special names among them are a gadget shape."""
    for key, value in _state_items(state):
        if not _maybe_callable(value):
            continue
        dunder = key.startswith("__") and key.endswith("__") and len(key) > 4
        method = any(key in names for names in PLANT_METHODS.values())
        if not (method or (dunder and key not in BENIGN_STATE_DUNDERS)):
            continue
        entry = walk.planted.get(id(target))
        if entry is None and len(walk.planted) < MAX_PLANTED:
            entry = (target, {})
            walk.planted[id(target)] = entry
        if entry is not None:
            entry[1][key] = value
        if dunder:
            yield from _shape(
                walk,
                artifact,
                (
                    f"BUILD state plants {render(value, budget=60)} as {key} on an object; the "
                    "loader or the application invokes special names"
                ),
                evidence=shown,
                offset=ev.offset,
            )


def _invoke_planted(
    ev: Call,
    target: CallResult,
    call_args: tuple[object, ...],
    artifact: Artifact,
    walk: _Walk,
    extra: frozenset[str],
) -> Iterator[Finding]:
    """The loader calls a method it looks up on ``target``; judge it if it was planted."""
    entry = walk.planted.get(id(target))
    if entry is None or entry[0] is not target:
        return
    for name in PLANT_METHODS.get(ev.kind, ()):
        value = entry[1].get(name)
        if value is None:
            continue
        resolved = _callee(value, call_args)
        if resolved is None:
            return  # the plant itself was reported; nothing more to name
        via = f"{name} planted by BUILD" + (f" and {resolved.via}" if resolved.via else "")
        inner = _Target(
            resolved.ref, resolved.bound, via, resolved.helper_unsafe, resolved.own_args
        )
        synthetic = Call(ev.offset, "REDUCE", value, call_args)
        yield from _resolved_call(synthetic, inner, artifact, walk, extra)
        return


# ---- resolution of callees -------------------------------------------------------------------


def _resolve(value: object, depth: int = 0) -> Global | _Module | None:
    """The module or attribute a value stands for, seen through import helpers."""
    t = type(value)
    if t is Global:
        return value  # type: ignore[return-value]
    if t is not CallResult or depth > MAX_RESOLVE_DEPTH:
        return None
    res: CallResult = value  # type: ignore[assignment]
    func = res.func
    args = res.args if type(res.args) is tuple else ()
    if type(func) is Global:
        helper = IMPORT_HELPERS.get(func.qualname)
        if helper == "module" and args and type(args[0]) is str:
            return _Module(canonical_module(args[0]))
        if helper == "resolve" and args and type(args[0]) is str:
            text = args[0]
            module, sep, name = text.partition(":")
            if not sep:
                module, _, name = text.rpartition(".")
            return Global(module, name, res.offset) if module and name else _Module(text)
        if helper == "pair" and len(args) >= 2 and type(args[0]) is str and type(args[1]) is str:
            return Global(args[0], args[1], res.offset)
        if helper == "getattr" and len(args) >= 2 and type(args[1]) is str:
            return _attribute(_resolve(args[0], depth + 1), args[1], res.offset)
        return None
    if (
        type(func) is CallResult
        and type(func.func) is Global
        and func.func.qualname == "operator.attrgetter"
        and args
    ):
        # attrgetter('a.b')(obj): obj.a.b
        names = func.args if type(func.args) is tuple else ()
        if len(names) == 1 and type(names[0]) is str:
            return _attribute(_resolve(args[0], depth + 1), names[0], res.offset)
    return None


def _attribute(base: Global | _Module | None, name: str, offset: int) -> Global | None:
    if type(base) is _Module:
        return Global(base.name, name, offset)
    if type(base) is Global:
        return Global(base.module, f"{base.name}.{name}", offset)
    return None


def _wrapped(res: CallResult) -> tuple[object, tuple[object, ...]]:
    """The callable a ``partial`` binds and its bound arguments (BUILD state wins: it is what
    ``partial.__setstate__`` installs)."""
    state = res.state
    if type(state) is tuple and state and _is_symbolic(state[0]):
        bound = state[1] if len(state) > 1 and type(state[1]) is tuple else ()
        return state[0], bound
    if isinstance(state, dict) and "func" in state:
        got = state.get("args")
        return state["func"], got if isinstance(got, tuple) else ()
    args = res.args
    if type(args) is tuple and args:
        return args[0], tuple(args[1:])
    return None, ()


def _callee(func: object, call_args: object, depth: int = 0) -> _Target | None:
    """What calling ``func`` with ``call_args`` invokes, or ``None`` if it cannot be named."""
    if type(func) is Global:
        return _Target(func, (), "", False)
    if type(func) is not CallResult or depth > MAX_RESOLVE_DEPTH:
        return None
    inner = func.func
    if type(inner) is Global:
        qualname = inner.qualname
        if qualname in WRAPPERS:
            wrapped, bound = _wrapped(func)
            target = _callee(wrapped, call_args, depth + 1)
            if target is None:
                return None
            via = qualname + (f" and {target.via}" if target.via else "")
            return _Target(
                target.ref, (*target.bound, *bound), via, target.helper_unsafe, target.own_args
            )
        if qualname == "operator.methodcaller":
            # methodcaller('name', *a)(obj) calls obj.name(*a).
            spec = func.args if type(func.args) is tuple else ()
            objs = call_args if type(call_args) is tuple else ()
            if spec and type(spec[0]) is str and objs:
                ref = _attribute(_resolve(objs[0], depth + 1), spec[0], func.offset)
                if ref is not None:
                    return _Target(ref, tuple(spec[1:]), qualname, True, own_args=False)
            return None
    resolved = _resolve(func, depth + 1)
    if isinstance(resolved, Global):
        ref = resolved
        helper = _helper_name(func)
        unsafe = helper not in ALLOW_EXACT
        return _Target(ref, (), helper, unsafe)
    return None


def _helper_name(res: CallResult) -> str:
    func = res.func
    if type(func) is Global:
        return func.qualname
    if type(func) is CallResult and type(func.func) is Global:
        return func.func.qualname
    return "a computed value"


# ---- argument checks -------------------------------------------------------------------------


def _check_arguments(
    ev: Call, rec: _ImportRecord, artifact: Artifact, walk: _Walk
) -> Iterator[Finding]:
    """Argument checks for callables whose danger depends on what they are given."""
    args = ev.args
    name = rec.qualname
    if name == "codecs.encode":
        ok = (
            type(args) is tuple
            and 1 <= len(args) <= 2
            and all(type(a) is str or (type(a) is Blob and a.kind == "str") for a in args)
        )
        if not ok:
            yield from _shape(
                walk,
                artifact,
                "codecs.encode called with something other than string constants",
                evidence=_render_call(ev),
                offset=ev.offset,
                rule=PKL009,
                escalate=False,
            )
    elif name == "numpy.core._ufunc_reconstruct":
        ok = type(args) is tuple and len(args) == 2 and all(type(a) is str for a in args)
        if not ok:
            yield from _shape(
                walk,
                artifact,
                "_ufunc_reconstruct imports a module named by a value computed at load time",
                evidence=_render_call(ev),
                offset=ev.offset,
                rule=PKL009,
                escalate=False,
            )
        elif ok:
            # It imports args[0] and returns args[0].args[1]: judge that global instead.
            assert isinstance(args, tuple)
            inner = _record(walk, Global(args[0], args[1], ev.offset), frozenset())
            if inner is not None:
                inner.imports += 1
                if inner.verdict.severity is not None and inner.call_offset is None:
                    inner.call_offset = ev.offset
                    inner.evidence = _render_call(ev)
    elif name == "dill._dill._load_type":
        arg = args[0] if type(args) is tuple and args else None
        if type(arg) is not str or arg in DILL_CODE_TYPES:
            rec.escalated = Severity.CRITICAL
            rec.why = "dill type lookup of a code/function type"
            rec.call_offset = ev.offset
            rec.evidence = _render_call(ev)
            walk.critical_seen = True
    elif rec.verdict.allowed:
        # An allowlisted helper given a dangerous callable: copyreg._reconstructor(os.system…).
        for found in iter_refs(args):
            if not isinstance(found, Global):
                continue
            inner = walk.records.get(found.qualname)
            sev = _severity_of(inner) if inner is not None else None
            if sev is not None and sev >= Severity.HIGH:
                yield from _shape(
                    walk,
                    artifact,
                    f"allowlisted {name} receives {found.qualname} as an argument",
                    evidence=_render_call(ev),
                    offset=ev.offset,
                    rule=PKL009,
                    escalate=False,
                    severity=sev,
                )
                break


# ---- nested deserialisers --------------------------------------------------------------------


def _queue_nested(kind: str, offset: int, qualname: str, args: object, walk: _Walk) -> None:
    mode = LOADERS.get(qualname)
    if mode is None or mode == "code" or kind not in ("REDUCE", "OBJ", "INST"):
        return
    if len(walk.nested) >= MAX_NESTED:
        walk.nested_over += 1
        return
    value = args[0] if type(args) is tuple and args else Unknown("no argument")
    walk.nested.append(_Nested(offset, qualname, mode, value))


_LATIN1: Final = frozenset({"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "l1"})
_UTF8: Final = frozenset({"utf8", "utf-8", "utf_8", "u8"})


class _Undecodable(Exception):
    """The payload is computed in a way this scanner does not model (or exceeds a limit)."""


def _payload(value: object, source: BinaryIO, cap: int, depth: int = 0) -> bytes | Blob:
    """The bytes a deserialiser would read from ``value``, decoded as the loader would see them.

    Literals, and values built in-stream by ``codecs``/``base64``/``binascii``/``zlib``/``bz2``/
    ``lzma``/``bytes``/``bytearray``/``io.BytesIO`` calls over literals. A large literal stays a
    ``Blob`` (read in place). Anything else raises ``_Undecodable``.
    """
    if depth > MAX_RESOLVE_DEPTH:
        raise _Undecodable("built by too many nested calls")
    t = type(value)
    if t is bytes:
        return value  # type: ignore[return-value]
    if isinstance(value, bytearray):
        return bytes(value)
    if t is str:
        return value.encode("utf-8", "surrogatepass")  # type: ignore[attr-defined, no-any-return]
    if t is Blob:
        return value  # type: ignore[return-value]
    if t is not CallResult or type(value.func) is not Global:  # type: ignore[attr-defined]
        raise _Undecodable(f"computed at load time ({render(value, budget=60)})")
    res: CallResult = value  # type: ignore[assignment]
    name = res.func.qualname  # type: ignore[attr-defined]
    args = res.args if type(res.args) is tuple else ()
    if not args:
        raise _Undecodable(f"{name} without literal arguments")

    def text(arg: object) -> str:
        if type(arg) is str:
            return arg
        if type(arg) is Blob and arg.kind == "str":
            return _read_blob(arg, source, cap).decode("utf-8", "surrogatepass")
        data = _raw(arg)
        return data.decode("latin-1")

    def raw(arg: object) -> bytes:
        return _raw(arg)

    def _raw(arg: object) -> bytes:
        got = _payload(arg, source, cap, depth + 1)
        return _read_blob(got, source, cap) if type(got) is Blob else got  # type: ignore[return-value]

    encoding = args[1].lower() if len(args) > 1 and type(args[1]) is str else None
    out: bytes
    if name == "codecs.encode" and (encoding is None or encoding in _UTF8 | _LATIN1):
        out = text(args[0]).encode(
            "latin-1" if encoding in _LATIN1 else "utf-8", "surrogatepass" if encoding else "strict"
        )
    elif name == "codecs.decode" and encoding is not None:
        out = _codec_decode(raw(args[0]), encoding, cap)
    elif name in _DECODERS:
        out = _DECODERS[name](raw(args[0]), cap)
    elif name in ("builtins.bytes", "builtins.bytearray"):
        arg = args[0]
        if type(arg) is list and len(arg) < 32 and all(type(x) is int for x in arg):
            out = bytes(arg)
        elif type(arg) is str or (type(arg) is Blob and arg.kind == "str"):
            out = text(arg).encode("latin-1" if encoding in _LATIN1 else "utf-8", "replace")
        else:
            out = raw(arg)
    elif name in ("builtins.bytes.fromhex", "builtins.bytearray.fromhex"):
        out = bytes.fromhex(text(args[0]))
    elif name in ("io.BytesIO", "io.StringIO"):
        out = raw(args[0])
    else:
        raise _Undecodable(f"built by {name}")
    if len(out) > cap:
        raise _Undecodable(f"decodes to more than {cap} bytes")
    return out


def _read_blob(blob: bytes | Blob, source: BinaryIO, cap: int) -> bytes:
    if type(blob) is bytes:
        return blob
    assert type(blob) is Blob
    if blob.size > cap:
        raise _Undecodable(f"literal of {blob.size} bytes is over the {cap}-byte limit")
    source.seek(blob.data_offset)
    data = source.read(blob.size)
    if len(data) != blob.size:
        raise _Undecodable("literal truncated")
    return data


def _zlib(data: bytes, cap: int) -> bytes:
    d = zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip header
    out = d.decompress(data, cap + 1)
    if len(out) > cap:
        raise _Undecodable(f"decompresses to more than {cap} bytes")
    return out


def _raw_zlib(data: bytes, cap: int) -> bytes:
    try:
        return _zlib(data, cap)
    except zlib.error:
        d = zlib.decompressobj(-zlib.MAX_WBITS)
        out = d.decompress(data, cap + 1)
        if len(out) > cap:
            raise _Undecodable(f"decompresses to more than {cap} bytes") from None
        return out


def _bz2(data: bytes, cap: int) -> bytes:
    out = bz2.BZ2Decompressor().decompress(data, cap + 1)
    if len(out) > cap:
        raise _Undecodable(f"decompresses to more than {cap} bytes")
    return out


def _lzma(data: bytes, cap: int) -> bytes:
    out = lzma.LZMADecompressor().decompress(data, cap + 1)
    if len(out) > cap:
        raise _Undecodable(f"decompresses to more than {cap} bytes")
    return out


_DECODERS: Final[dict[str, Callable[[bytes, int], bytes]]] = {
    "base64.b64decode": lambda d, _c: base64.b64decode(d),
    "base64.standard_b64decode": lambda d, _c: base64.standard_b64decode(d),
    "base64.urlsafe_b64decode": lambda d, _c: base64.urlsafe_b64decode(d),
    "base64.decodebytes": lambda d, _c: base64.decodebytes(d),
    "base64.decodestring": lambda d, _c: base64.decodebytes(d),
    "base64.b32decode": lambda d, _c: base64.b32decode(d),
    "base64.b16decode": lambda d, _c: base64.b16decode(d, casefold=True),
    "base64.b85decode": lambda d, _c: base64.b85decode(d),
    "base64.a85decode": lambda d, _c: base64.a85decode(d),
    "binascii.a2b_base64": lambda d, _c: binascii.a2b_base64(d),
    "binascii.a2b_hex": lambda d, _c: binascii.a2b_hex(d),
    "binascii.unhexlify": lambda d, _c: binascii.unhexlify(d),
    "zlib.decompress": _raw_zlib,
    "gzip.decompress": _zlib,
    "bz2.decompress": _bz2,
    "lzma.decompress": _lzma,
}


def _codec_decode(data: bytes, encoding: str, cap: int) -> bytes:
    enc = encoding.replace("-", "_")
    if enc in ("base64", "base64_codec", "base_64"):
        return base64.decodebytes(data)
    if enc in ("hex", "hex_codec"):
        return binascii.unhexlify(data)
    if enc in ("zlib", "zlib_codec", "zip"):
        return _raw_zlib(data, cap)
    if enc in ("bz2", "bz2_codec"):
        return _bz2(data, cap)
    if encoding in _LATIN1 or encoding in _UTF8:
        return data  # bytes -> str -> (re-encoded by the caller): same bytes for our purpose
    raise _Undecodable(f"codecs.decode with {encoding!r}")


def _flush(artifact: Artifact, walk: _Walk) -> Iterator[Finding]:
    """One finding per distinct non-allowlisted import, at its first call (or import)."""
    for rec in walk.records.values():
        severity = _severity_of(rec)
        if severity is None:
            continue
        if rec.benign_calls and not rec.calls and rec.benign_calls >= rec.imports:
            continue  # every use was a lookup of an allowlisted attribute
        offset = rec.call_offset if rec.call_offset is not None else rec.offset
        used = _usage(rec)
        reason = rec.why or rec.verdict.reason
        if rec.called_unvetted and severity is Severity.HIGH:
            yield artifact.finding(
                PKL010,
                f"{rec.qualname}: {reason}; called at load time; {used}",
                evidence=rec.evidence,
                offset=offset,
                severity=severity,
                confidence=Confidence.MEDIUM,
            )
        elif severity >= Severity.HIGH:
            yield artifact.finding(
                PKL001,
                f"{rec.qualname}: {reason}; {used}",
                evidence=rec.evidence,
                offset=offset,
                severity=severity,
                confidence=Confidence.HIGH if severity is Severity.CRITICAL else Confidence.MEDIUM,
            )
        else:
            yield artifact.finding(
                PKL002,
                f"{rec.qualname}: {reason}; {used}",
                evidence=rec.evidence,
                offset=offset,
                severity=severity,
                confidence=Confidence.MEDIUM,
            )
    if walk.untracked:
        yield artifact.finding(
            PKL002,
            f"{walk.untracked} more imports beyond {MAX_TRACKED_IMPORTS} distinct names",
            severity=Severity.HIGH,
            confidence=Confidence.MEDIUM,
        )


def _usage(rec: _ImportRecord) -> str:
    parts = []
    if rec.calls:
        parts.append(f"called {rec.calls}×")
    if rec.rebuilds:
        parts.append(f"rebuilt {rec.rebuilds}× (NEWOBJ)")
    return ", ".join(parts) if parts else "imported (not called directly)"


def _nested(
    job: _Nested, artifact: Artifact, ctx: ScanContext, source: BinaryIO
) -> Iterator[Finding]:
    """Analyse a payload handed to a deserialiser: inline for pickles, via the engine else."""
    label = f"{job.loader}@{job.offset}"
    cap = ctx.limits.max_pickle_string
    try:
        payload = _payload(job.value, source, cap)
    except (_Undecodable, ValueError, TypeError, zlib.error, lzma.LZMAError, OSError) as exc:
        yield artifact.finding(
            PKL005,
            f"{job.loader} deserialises a value that cannot be analysed here: {exc}",
            evidence=f"{label}: {render(job.value, budget=80)}",
            offset=job.offset,
        )
        return
    if artifact.depth + 1 > ctx.limits.max_nesting:
        yield artifact.finding(
            PKL005,
            f"nested payload of {job.loader} deeper than {ctx.limits.max_nesting} levels",
            evidence=label,
            offset=job.offset,
        )
        return
    size = payload.size if isinstance(payload, Blob) else len(payload)
    try:
        if job.mode == "file":
            # torch.load/joblib.load/numpy.load of bytes: a zip, npy, joblib file or a legacy
            # stacked pickle; the engine sniffs it and every scanner sees it.
            stream = _payload_stream(payload, source, ctx)
            child = artifact.child(label, ArtifactKind.UNKNOWN, size, stream)
            yield from ctx.dispatch(child)
        elif isinstance(payload, Blob):
            child = artifact.child(label, ArtifactKind.PICKLE, size, source)
            end = payload.data_offset + size
            yield from scan_pickle(child, ctx, stream=source, start=payload.data_offset, end=end)
        else:
            child = artifact.child(label, ArtifactKind.PICKLE, size, io.BytesIO(payload))
            yield from scan_pickle(child, ctx)
    except LimitExceeded as exc:
        yield artifact.finding(
            PKL005,
            f"nested payload of {job.loader} exceeds a limit: {exc}",
            evidence=label,
            offset=job.offset,
        )


def _payload_stream(payload: bytes | Blob, source: BinaryIO, ctx: ScanContext) -> BinaryIO:
    if type(payload) is bytes:
        return io.BytesIO(payload)
    assert type(payload) is Blob
    from scanners._io import spool

    def chunks() -> Iterator[bytes]:
        left = payload.size
        pos = payload.data_offset
        while left > 0:
            source.seek(pos)
            block = source.read(min(left, 1 << 20))
            if not block:
                return
            pos += len(block)
            left -= len(block)
            yield block

    stream, _ = spool(chunks(), ctx.limits.max_read_bytes, "nested payload")
    return stream


def _render_args(args: object) -> str:
    if type(args) is tuple:
        return ", ".join(render(a, budget=80) for a in args[:6]) + (", …" if len(args) > 6 else "")
    return "*" + render(args, budget=80)


def _render_call(ev: Call) -> str:
    """Evidence line for a call event: ``os.system('true')``, ``obj.__setstate__({...})``."""
    func = render(ev.func, budget=80)
    inner = _render_args(ev.args)
    match ev.kind:
        case "BUILD":
            return f"{func}.__setstate__({inner})"
        case "APPENDS":
            return f"{func}.extend([{inner}])"
        case "SETITEMS":
            return f"{func}.update({inner})"
        case "ADDITEMS":
            return f"{func}.add({inner})"
        case "NEWOBJ" | "NEWOBJ_EX":
            kw = f", **{render(ev.kwargs, budget=60)}" if ev.kwargs is not None else ""
            return f"{func}.__new__({func}{', ' if inner else ''}{inner}{kw})"
        case _:
            return f"{func}({inner})"


__all__ = ["RULES", "scan_pickle"]
