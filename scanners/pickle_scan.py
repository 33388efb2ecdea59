"""Pickle scanner: raw, joblib, dill/cloudpickle and stacked pickles, judged by their imports.

The symbolic machine (``scanners.pickle_vm``) reports every import and call; this module turns
them into findings with the allowlist (``scanners.allowlist``). One finding per distinct import
(with the first call on it as evidence, at that call's offset), one per suspicious call shape,
one per stream break. Nested pickles passed to ``pickle.loads`` and friends are walked too, with
findings located inside the nesting (member ``pickle.loads@<offset>``).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, ClassVar, Final

from scanners.allowlist import (
    ALLOWLIST_VERSION,
    NESTED_LOADERS,
    Classification,
    classify,
)
from scanners.base import Artifact, ScanContext, make_rule
from scanners.pickle_vm import (
    Blob,
    Call,
    CallResult,
    ComputedImport,
    Extension,
    Global,
    Import,
    PickleMachine,
    Stop,
    StreamError,
    TrailingData,
    Unknown,
    canonical_parts,
    iter_refs,
    render,
)
from supplychain.errors import LimitExceeded
from supplychain.model import ArtifactKind, Confidence, Finding, Rule, Severity

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
    "joblib, pandas) do not use. Loading it imports that module and may call it with "
    "attacker-chosen arguments; denylists miss new gadgets, so unknown imports are reported.",
    "Check that the module is yours and expected; if so, add it to the policy's "
    "extra_allowed_imports ('module.name' or 'module.*'). Otherwise convert the weights to "
    "safetensors in an isolated environment.",
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
)

MAX_TRACKED_IMPORTS: Final = 2000
"""Distinct import names remembered per pickle; more are summarised in one finding."""
MAX_SHAPE_FINDINGS: Final = 20
"""PKL008/PKL009 findings per pickle before they are only counted."""
MAX_NESTED: Final = 32
"""Nested payloads analysed per pickle."""
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
    evidence: str = ""
    call_offset: int | None = None
    escalated: Severity | None = None
    why: str = ""


@dataclass(slots=True)
class _Nested:
    """A payload handed to a deserialiser, to analyse after the walk."""

    offset: int
    loader: str
    payload: bytes | Blob


@dataclass(slots=True)
class _Walk:
    """Accumulated facts of one walk over one stream."""

    records: dict[str, _ImportRecord] = field(default_factory=dict)
    untracked: int = 0
    shapes: int = 0
    nested: list[_Nested] = field(default_factory=list)
    critical_seen: bool = False


def _severity_of(rec: _ImportRecord) -> Severity | None:
    base = rec.verdict.severity
    if rec.escalated is not None and (base is None or rec.escalated > base):
        return rec.escalated
    return base


class PickleScanner:
    """Analyses pickles (plain, joblib, dill/cloudpickle, stacked) without unpickling them.

    See ``Scanner.scan``. Allowlist ``scanners.allowlist.ALLOWLIST_VERSION`` judges imports.
    """

    name: ClassVar[str] = "pickle"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset({ArtifactKind.PICKLE})
    rules: ClassVar[tuple[Rule, ...]] = RULES
    allowlist_version: ClassVar[str] = ALLOWLIST_VERSION

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """See ``Scanner.scan``: walk ``artifact.stream`` from 0 to its end."""
        yield from scan_pickle(artifact, ctx)


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
    yield from _flush(artifact, walk)
    for job in walk.nested:
        yield from _nested(job, artifact, ctx, source, start)
    if limit_hit is not None:
        raise limit_hit


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


def _on_call(ev: Call, artifact: Artifact, walk: _Walk, extra: frozenset[str]) -> Iterator[Finding]:
    func = ev.func
    kind = ev.kind
    shown = _render_call(ev)
    if type(func) is Global:
        rec = _record(walk, func, extra)
        if kind in ("BUILD", "APPENDS", "SETITEMS", "ADDITEMS"):
            # Mutating an imported class or module itself: monkeypatching at load time.
            if walk.shapes < MAX_SHAPE_FINDINGS:
                walk.shapes += 1
                yield artifact.finding(
                    PKL008,
                    f"{kind} mutates the imported object {func.qualname} itself",
                    evidence=shown,
                    offset=ev.offset,
                )
            return
        if rec is not None:
            rec.calls += 1
            if rec.call_offset is None:
                rec.call_offset = ev.offset
                rec.evidence = shown
            yield from _check_arguments(ev, rec, artifact, walk)
        _queue_nested(ev, func, walk)
    elif type(func) is CallResult or type(func) is Unknown:
        if kind in ("APPENDS", "SETITEMS", "ADDITEMS", "BUILD") and type(func) is CallResult:
            pass  # the loader calls extend/__setitem__/__setstate__ on an object it built
        elif walk.shapes < MAX_SHAPE_FINDINGS:
            walk.shapes += 1
            what = "the result of a call" if type(func) is CallResult else str(func)
            yield artifact.finding(
                PKL008,
                f"{kind} calls {what}, not an imported global",
                evidence=shown,
                offset=ev.offset,
                severity=Severity.CRITICAL if walk.critical_seen else Severity.HIGH,
            )
    # Dangerous callables passed as arguments of anything (partial(os.system), reconstructor).
    if kind != "BUILD" or type(func) is not Global:
        for ref in iter_refs(ev.args):
            if type(ref) is Global:
                inner = walk.records.get(ref.qualname)
                if inner is not None and inner.call_offset is None:
                    sev = _severity_of(inner)
                    if sev is not None and sev >= Severity.HIGH:
                        inner.call_offset = ev.offset
                        inner.evidence = shown


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
        if not ok and walk.shapes < MAX_SHAPE_FINDINGS:
            walk.shapes += 1
            yield artifact.finding(
                PKL009,
                "codecs.encode called with something other than string constants",
                evidence=_render_call(ev),
                offset=ev.offset,
            )
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
        for ref in iter_refs(args):
            if type(ref) is not Global:
                continue
            inner = walk.records.get(ref.qualname)
            sev = _severity_of(inner) if inner is not None else None
            if sev is not None and sev >= Severity.HIGH and walk.shapes < MAX_SHAPE_FINDINGS:
                walk.shapes += 1
                yield artifact.finding(
                    PKL009,
                    f"allowlisted {name} receives {ref.qualname} as an argument",
                    evidence=_render_call(ev),
                    offset=ev.offset,
                    severity=sev,
                )
                break


def _queue_nested(ev: Call, func: Global, walk: _Walk) -> None:
    qualname = func.qualname
    if qualname not in NESTED_LOADERS or ev.kind not in ("REDUCE", "OBJ", "INST"):
        return
    if qualname == "marshal.loads":
        return  # a code object: the import is CRITICAL on its own
    args = ev.args
    payload = args[0] if type(args) is tuple and args else None
    if type(payload) is CallResult and _is_codecs_bytes(payload):
        text = payload.args[0]  # type: ignore[index]
        payload = text.encode("latin-1", "replace")
    if type(payload) is bytearray:
        payload = bytes(payload)
    if isinstance(payload, (bytes, Blob)) and len(walk.nested) < MAX_NESTED:
        walk.nested.append(_Nested(ev.offset, qualname, payload))
    elif len(walk.nested) < MAX_NESTED:
        walk.nested.append(_Nested(ev.offset, qualname, b""))


def _is_codecs_bytes(value: CallResult) -> bool:
    func = value.func
    args = value.args
    return (
        type(func) is Global
        and func.qualname == "codecs.encode"
        and type(args) is tuple
        and len(args) >= 1
        and type(args[0]) is str
    )


def _flush(artifact: Artifact, walk: _Walk) -> Iterator[Finding]:
    """One finding per distinct non-allowlisted import, at its first call (or import)."""
    for rec in walk.records.values():
        severity = _severity_of(rec)
        if severity is None:
            continue
        offset = rec.call_offset if rec.call_offset is not None else rec.offset
        used = f"called {rec.calls}×" if rec.calls else "imported (not called directly)"
        reason = rec.why or rec.verdict.reason
        if severity >= Severity.HIGH:
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


def _nested(
    job: _Nested, artifact: Artifact, ctx: ScanContext, source: BinaryIO, start: int
) -> Iterator[Finding]:
    """Analyse a payload handed to a deserialiser: inline for pickles, via the engine else."""
    label = f"{job.loader}@{job.offset}"
    payload = job.payload
    if type(payload) is bytes and not payload:
        yield artifact.finding(
            PKL005,
            f"{job.loader} deserialises a value computed at load time",
            evidence=label,
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
    if job.loader == "torch.storage._load_from_bytes":
        # torch.load of bytes: a zip or a legacy stacked pickle; the engine sniffs it.
        stream = _payload_stream(payload, source, ctx)
        child = artifact.child(label, ArtifactKind.UNKNOWN, size, stream)
        yield from ctx.dispatch(child)
        return
    if type(payload) is Blob:
        child = artifact.child(label, ArtifactKind.PICKLE, size, source)
        yield from scan_pickle(
            child, ctx, stream=source, start=payload.data_offset, end=payload.data_offset + size
        )
        return
    assert type(payload) is bytes
    child = artifact.child(label, ArtifactKind.PICKLE, size, io.BytesIO(payload))
    yield from scan_pickle(child, ctx)


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


def _render_call(ev: Call) -> str:
    """Evidence line for a call event: ``os.system('true')``, ``obj.__setstate__({...})``."""
    func = render(ev.func, budget=80)
    args = ev.args
    if type(args) is tuple:
        inner = ", ".join(render(a, budget=80) for a in args[:6]) + (", …" if len(args) > 6 else "")
    else:
        inner = "*" + render(args, budget=80)
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


__all__ = ["RULES", "PickleScanner", "scan_pickle"]
