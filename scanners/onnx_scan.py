"""ONNX models: external-data paths, custom operator domains, Python ops, subgraphs and functions.

Parsed as a stream of protobuf fields (``_protobuf``), so a model of any size, including over the
2 GB the protobuf library can hold, is walked with flat memory: graphs, nodes and attributes are
read, tensor payloads (``raw_data`` and the typed arrays) are skipped by seeking, and external
data is never opened (only ``realpath``/``lstat`` of where it points).

Field numbers: onnx/onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto,
SparseTensorProto, FunctionProto, TrainingInfoProto, StringStringEntryProto).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from scanners._paths import is_outside_path, is_url
from scanners._protobuf import LEN, Field, ProtoReader
from scanners.base import Artifact, ScanContext, note_sibling_read
from supplychain.core.errors import ArtifactError, LimitExceeded
from supplychain.core.model import ArtifactKind, Confidence, FactValue, Finding, Rule, Severity
from supplychain.core.rules import make_rule

ONNX_TRAVERSAL = "https://homepage-423.pages.dev/blog/post/two-incomplete-fixes-for-a-path-traversal-vulnerability-in-onnx-cve-2026-27489-18075/"

ONX001 = make_rule(
    "ONX001",
    "External data path leaves the model directory",
    Severity.HIGH,
    "A tensor's external_data location is absolute, contains '..', is a URL, or resolves "
    "(through a symlink) outside the model's directory. onnx.load and ONNX Runtime read that "
    "file into the tensor (host file disclosure; path traversal CVE-2022-25882, CVE-2024-27318, "
    "CVE-2026-27489; symlinks CVE-2026-34447), and saving writes there.",
    "Do not load the model. External data must be plain relative names of files next to it.",
    cwe=22,
    references=(ONNX_TRAVERSAL,),
)
ONX002 = make_rule(
    "ONX002",
    "Custom operator domain",
    Severity.MEDIUM,
    "Nodes use an operator domain outside the ONNX standard and ONNX Runtime's contrib ops. "
    "Running the model needs a custom-op library (native code) registered by the loader.",
    "Make sure the custom-op library comes from a source you trust and is pinned.",
    cwe=829,
)
ONX003 = make_rule(
    "ONX003",
    "Python operator in the graph",
    Severity.HIGH,
    "PyOp/PythonOp nodes call a Python function registered in the loading process "
    "(onnxruntime-extensions PyOp, PyTorch autograd fallbacks). The graph is code that runs "
    "whatever Python that name resolves to.",
    "Do not run the model unless you wrote the Python operator it needs.",
    cwe=94,
)
ONX004 = make_rule(
    "ONX004",
    "Local function in a standard operator domain",
    Severity.MEDIUM,
    "The model defines a function in the standard ONNX (or ONNX Runtime) domain, which can "
    "shadow a built-in operator with different semantics depending on the runtime.",
    "Check what the function does; exporters put local functions in their own domains.",
    cwe=694,
)
ONX005 = make_rule(
    "ONX005",
    "External data file is a hard link, special file or missing",
    Severity.LOW,
    "The external data file has more than one hard link (it may be the same inode as a file "
    "elsewhere on the host, CVE-2026-34446), is not a regular file, or does not exist (the "
    "weights were not part of what was scanned).",
    "Copy the external data as a plain regular file next to the model and scan again.",
    cwe=59,
)

STANDARD_DOMAINS = frozenset(
    {
        "", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training",
        "ai.onnx.preview", "com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental",
        "com.microsoft.mlfeaturizers", "com.ms.internal.nhwc", "org.pytorch.aten",
    }
)  # fmt: skip
"""ONNX operator sets plus ONNX Runtime's built-in contrib domains."""
EXTENSION_DOMAINS = frozenset({"ai.onnx.contrib", "com.microsoft.extensions"})
"""onnxruntime-extensions: widely used, still native code from another package."""
PYTHON_OPS = frozenset({"PyOp", "PythonOp", "PyFunc", "PythonOpGrad"})
MAX_GRAPH_DEPTH = 32
MAX_LOCATIONS = 100_000


@dataclass(slots=True)
class _Domain:
    """Uses of one custom domain."""

    ops: dict[str, int] = field(default_factory=dict)
    first: str = ""


@dataclass(slots=True)
class _Location:
    """Tensors that point at one external-data location."""

    tensors: list[str] = field(default_factory=list)
    count: int = 0


class _OnnxWalk:
    """One pass over a ModelProto, collecting what the findings need."""

    def __init__(self, reader: ProtoReader) -> None:
        self.reader = reader
        self.domains: dict[str, _Domain] = {}
        self.python_ops: list[str] = []
        self.locations: dict[str, _Location] = {}
        self.functions: set[tuple[str, str]] = set()
        self.shadowing: list[str] = []
        self.saw_graph = False
        self.facts: list[tuple[str, FactValue]] = []
        """Producer, IR version, opsets, graph input/output counts (see ``OnnxScanner``)."""
        self.opsets: list[str] = []
        self.metadata = 0

    def model(self, size: int) -> None:
        """ModelProto: graph = 7, functions = 25, training_info = 20 (and the facts' fields:
        ir_version = 1, producer_name = 2, producer_version = 3, model_version = 5,
        opset_import = 8, metadata_props = 14)."""
        r = self.reader
        for f in r.fields(0, size):
            if f.number == 1 and f.wire != LEN:
                self.facts.append(("onnx.ir_version", f.value))
            elif f.number == 5 and f.wire != LEN:
                self.facts.append(("onnx.model_version", f.value))
            if f.wire != LEN:
                continue
            if f.number == 2:
                self.facts.append(("onnx.producer_name", r.text(f, 256)))
            elif f.number == 3:
                self.facts.append(("onnx.producer_version", r.text(f, 256)))
            elif f.number == 8 and len(self.opsets) < 64:
                self.opset(f)
            elif f.number == 14 and self.metadata < 32:
                self.metadata += 1
                key = value = ""
                for g in r.fields(f.offset, f.end):
                    if g.wire == LEN and g.number == 1:
                        key = r.text(g, 128)
                    elif g.wire == LEN and g.number == 2:
                        value = r.text(g, 512)
                if key:
                    self.facts.append((f"onnx.metadata.{key}", value))
            if f.number == 7:
                self.saw_graph = True
                self.graph_io(f)
                self.graph(f, "graph", 0)
            elif f.number == 25:
                self.function(f)
            elif f.number == 20:  # TrainingInfoProto: initialization = 1, algorithm = 2
                for g in r.fields(f.offset, f.end):
                    if g.number in (1, 2) and g.wire == LEN:
                        self.graph(g, "training_info", 0)

    def opset(self, of: Field) -> None:
        """OperatorSetIdProto: domain = 1, version = 2."""
        domain, version = "", 0
        for g in self.reader.fields(of.offset, of.end):
            if g.number == 1 and g.wire == LEN:
                domain = self.reader.text(g, 128)
            elif g.number == 2 and g.wire != LEN:
                version = g.value
        self.opsets.append(f"{domain or 'ai.onnx'}:{version}")

    def graph_io(self, gf: Field) -> None:
        """Count the main graph's inputs (11), outputs (12) and initializers (5)."""
        counts = {5: 0, 11: 0, 12: 0}
        for f in self.reader.fields(gf.offset, gf.end):
            if f.wire == LEN and f.number in counts:
                counts[f.number] += 1
        self.facts.append(("onnx.graph.inputs", counts[11]))
        self.facts.append(("onnx.graph.outputs", counts[12]))
        self.facts.append(("tensor.count", counts[5]))

    def graph(self, gf: Field, scope: str, depth: int) -> None:
        """GraphProto: node = 1, name = 2, initializer = 5, sparse_initializer = 15."""
        if depth > MAX_GRAPH_DEPTH:
            raise LimitExceeded(f"ONNX subgraphs nested deeper than {MAX_GRAPH_DEPTH}", gf.offset)
        r = self.reader
        for f in r.fields(gf.offset, gf.end):
            if f.wire != LEN:
                continue
            if f.number == 1:
                self.node(f, scope, depth)
            elif f.number == 2:
                name = r.text(f, 128)
                if depth and name:
                    scope = f"{scope}/{name}"
            elif f.number == 5:
                self.tensor(f)
            elif f.number == 15:
                self.sparse(f)

    def function(self, ff: Field) -> None:
        """FunctionProto: name = 1, node = 7, domain = 10."""
        r = self.reader
        name = domain = ""
        nodes: list[Field] = []
        for f in r.fields(ff.offset, ff.end):
            if f.wire != LEN:
                continue
            if f.number == 1:
                name = r.text(f, 256)
            elif f.number == 10:
                domain = r.text(f, 256)
            elif f.number == 7:
                nodes.append(f)
                if len(nodes) > 100_000:
                    raise LimitExceeded("ONNX function with more than 100000 nodes", ff.offset)
        self.functions.add((domain, name))
        if domain in STANDARD_DOMAINS:
            self.shadowing.append(f"{domain or 'ai.onnx'}::{name}")
        for nf in nodes:
            self.node(nf, f"function {domain}::{name}", 0)

    def node(self, nf: Field, scope: str, depth: int) -> None:
        """NodeProto: name = 3, op_type = 4, attribute = 5, domain = 7."""
        r = self.reader
        name = op = domain = ""
        for f in r.fields(nf.offset, nf.end):
            if f.wire != LEN:
                continue
            if f.number == 3:
                name = r.text(f, 256)
            elif f.number == 4:
                op = r.text(f, 256)
            elif f.number == 7:
                domain = r.text(f, 256)
            elif f.number == 5:
                self.attribute(f, scope, depth)
        where = f"{scope}: {name or '<unnamed>'}"
        if op in PYTHON_OPS:
            self.python_ops.append(f"{domain}::{op} at {where}")
        if domain not in STANDARD_DOMAINS:
            entry = self.domains.setdefault(domain, _Domain(first=where))
            entry.ops[op] = entry.ops.get(op, 0) + 1

    def attribute(self, af: Field, scope: str, depth: int) -> None:
        """AttributeProto: t = 5, g = 6, tensors = 10, graphs = 11, sparse = 22/23."""
        r = self.reader
        for f in r.fields(af.offset, af.end):
            if f.wire != LEN:
                continue
            if f.number in (6, 11):
                self.graph(f, scope, depth + 1)
            elif f.number in (5, 10):
                self.tensor(f)
            elif f.number in (22, 23):
                self.sparse(f)

    def sparse(self, sf: Field) -> None:
        """SparseTensorProto: values = 1, indices = 2 (both TensorProto)."""
        for f in self.reader.fields(sf.offset, sf.end):
            if f.number in (1, 2) and f.wire == LEN:
                self.tensor(f)

    def tensor(self, tf: Field) -> None:
        """TensorProto: name = 8, external_data = 13, data_location = 14; data never read."""
        r = self.reader
        name = ""
        location: str | None = None
        for f in r.fields(tf.offset, tf.end):
            if f.number == 8 and f.wire == LEN:
                name = r.text(f, 256)
            elif f.number == 13 and f.wire == LEN:
                key = value = ""
                for g in r.fields(f.offset, f.end):
                    if g.number == 1 and g.wire == LEN:
                        key = r.text(g, 64)
                    elif g.number == 2 and g.wire == LEN:
                        value = r.text(g, 4096)
                if key == "location":
                    location = value
        if location:
            entry = self.locations.get(location)
            if entry is None:
                if len(self.locations) >= MAX_LOCATIONS:
                    raise LimitExceeded(f"more than {MAX_LOCATIONS} external data files")
                entry = self.locations[location] = _Location()
            entry.count += 1
            if len(entry.tensors) < 3:
                entry.tensors.append(name)


class OnnxScanner:
    """See ``Scanner``: ONNX ModelProto files of any size, external data never loaded."""

    name: ClassVar[str] = "onnx"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset({ArtifactKind.ONNX})
    rules: ClassVar[tuple[Rule, ...]] = (ONX001, ONX002, ONX003, ONX004, ONX005)

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """See ``Scanner.scan``. Findings made before a parse error are still reported."""
        walk = _OnnxWalk(ProtoReader(artifact.stream, artifact.size))
        error: ArtifactError | None = None
        try:
            walk.model(artifact.size)
        except ArtifactError as exc:
            error = exc
        ctx.emit(artifact.fact("format", "onnx"))
        for key, value in walk.facts:
            ctx.emit(artifact.fact(key, value))
        if walk.opsets:
            ctx.emit(artifact.fact("onnx.opsets", tuple(walk.opsets)))
            default = [o for o in walk.opsets if o.startswith("ai.onnx:")]
            if default:
                ctx.emit(artifact.fact("onnx.opset", int(default[0].split(":")[1])))
        yield from self._findings(artifact, walk)
        if error is not None:
            raise error
        if not walk.saw_graph:
            raise ArtifactError("ONNX model has no graph")

    def _findings(self, artifact: Artifact, walk: _OnnxWalk) -> Iterator[Finding]:
        for loc, entry in walk.locations.items():
            yield from _check_location(artifact, loc, entry)
        for domain, info in walk.domains.items():
            ops = [op for op in info.ops if (domain, op) not in walk.functions]
            if not ops:
                continue
            count = sum(info.ops[op] for op in ops)
            listed = ", ".join(sorted(ops)[:8])
            yield artifact.finding(
                ONX002,
                f"{count} node(s) use custom operator domain {domain!r} ({listed})",
                evidence=f"domain={domain!r} ops={listed} first at {info.first}",
                severity=Severity.LOW if domain in EXTENSION_DOMAINS else None,
            )
        if walk.python_ops:
            yield artifact.finding(
                ONX003,
                f"{len(walk.python_ops)} Python operator node(s)",
                evidence="; ".join(walk.python_ops[:3]),
            )
        if walk.shadowing:
            yield artifact.finding(
                ONX004,
                f"local function(s) defined in a standard domain: {', '.join(walk.shadowing[:5])}",
                evidence=", ".join(walk.shadowing[:5]),
                confidence=Confidence.MEDIUM,
            )


def _check_location(artifact: Artifact, loc: str, entry: _Location) -> Iterator[Finding]:
    """Judge one external-data location, lexically and (for files on disk) by resolving it."""
    tensors = ", ".join(repr(t) for t in entry.tensors)
    more = (
        f" (+{entry.count - len(entry.tensors)} more)" if entry.count > len(entry.tensors) else ""
    )
    what = f"{entry.count} tensor(s) ({tensors}{more})"
    if "\x00" in loc:
        yield artifact.finding(ONX001, f"{what} use a location with a NUL byte", evidence=loc)
        return
    lexical = is_outside_path(loc) or is_url(loc)
    if lexical:
        yield artifact.finding(
            ONX001,
            f"{what} read external data from {loc!r}, outside the model directory",
            evidence=f"location={loc!r}",
        )
    if artifact.fs_path is None or artifact.member or is_url(loc):
        return
    note_sibling_read(f"external data {loc!r}")
    base = os.path.realpath(artifact.fs_path.parent)
    target = Path(artifact.fs_path.parent, loc)
    real = os.path.realpath(target)
    inside = real == base or real.startswith(base.rstrip(os.sep) + os.sep)
    if not inside and not lexical:
        yield artifact.finding(
            ONX001,
            f"{what} read {loc!r}, which resolves through a symlink to {real}",
            evidence=f"location={loc!r} -> {real}",
        )
    try:
        st = Path(real).stat()
    except OSError:
        yield artifact.finding(
            ONX005,
            f"{what} point at {loc!r}, which does not exist",
            evidence=f"location={loc!r}",
            severity=Severity.INFO if not lexical else Severity.LOW,
        )
        return
    if not stat.S_ISREG(st.st_mode):
        yield artifact.finding(
            ONX005,
            f"{what} point at {loc!r}, which is not a regular file",
            evidence=f"location={loc!r} -> {real}",
            severity=Severity.HIGH,
        )
    elif st.st_nlink > 1:
        yield artifact.finding(
            ONX005,
            f"external data {loc!r} has {st.st_nlink} hard links",
            evidence=f"location={loc!r} nlink={st.st_nlink}",
        )
