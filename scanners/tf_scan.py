"""TensorFlow SavedModel (``saved_model.pb``), frozen GraphDefs and ``keras_metadata.pb``.

Parsed with the streaming wire walker in ``_protobuf`` (no TensorFlow, no generated classes). A
SavedModel graph runs inside the loading process, so ops that touch files, processes or the
network are the code-execution surface: they are flagged in the main graph and in every function
of the library. Large constants (``tensor_content``) are skipped by seeking.

Field numbers: tensorflow/core/protobuf/saved_model.proto, meta_graph.proto,
saved_object_graph.proto; tensorflow/core/framework/graph.proto, node_def.proto, function.proto,
attr_value.proto, tensor.proto; tensorflow/python/keras/protobuf/saved_metadata.proto.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from scanners._paths import is_outside_path, is_url
from scanners._protobuf import LEN, VARINT, Field, ProtoReader
from scanners.base import Artifact, ScanContext
from scanners.keras_config import (
    KERAS_CONFIG_RULES,
    analyze_config,
    hits_to_findings,
    parse_json_config,
)
from supplychain.core.errors import ArtifactError
from supplychain.core.model import ArtifactKind, Confidence, Finding, Rule, Severity
from supplychain.core.rules import make_rule

TF_SECURITY = "https://github.com/tensorflow/tensorflow/blob/master/SECURITY.md"

TFM001 = make_rule(
    "TFM001",
    "Graph calls back into Python",
    Severity.CRITICAL,
    "PyFunc, PyFuncStateless and EagerPyFunc run a Python callable when the graph executes. "
    "TensorFlow's own security policy says a SavedModel is a program; these ops make it one that "
    "runs arbitrary Python in the loading process.",
    "Do not run the model. Ask for a version built from standard TensorFlow ops only.",
    cwe=94,
    references=(TF_SECURITY,),
)
TFM002 = make_rule(
    "TFM002",
    "Graph reads or writes host files",
    Severity.HIGH,
    "Ops such as ReadFile, WriteFile, MatchingFiles, file readers and file datasets, "
    "ImmutableConst (memory-maps a path named in the graph) and descriptor files of proto ops "
    "read or write the loading machine's file system when the graph runs (data theft, "
    "overwriting files). Inference graphs have no use for them.",
    "Run the model only in a sandbox without access to secrets, or ask for a graph without "
    "file operations.",
    cwe=73,
    references=(TF_SECURITY,),
)
TFM003 = make_rule(
    "TFM003",
    "Graph talks to the network",
    Severity.HIGH,
    "RPC ops, tf.data service datasets, BigQuery readers and debug ops with grpc:// URLs open "
    "network connections from the loading process (exfiltration, SSRF).",
    "Run the model without network access, or ask for a graph without network operations.",
    cwe=918,
    references=(TF_SECURITY,),
)
TFM004 = make_rule(
    "TFM004",
    "Checkpoint or table op with a hard-coded outside path",
    Severity.HIGH,
    "Save/Restore, MergeV2Checkpoints and text-file table initialisers normally take their path "
    "from the SavedModel's own variables/ and assets/ directories. A constant absolute path, "
    "'..' or URL instead makes loading read or overwrite another file.",
    "Do not load the model; re-export it from its source.",
    cwe=22,
)
TFM005 = make_rule(
    "TFM005",
    "Graph writes debug or summary output to the host",
    Severity.MEDIUM,
    "Debug ops (DebugIdentityV2, DebugIdentity...), summary writers and PrintV2 with a file "
    "output stream write tensor values to paths named in the graph when it runs.",
    "Strip debug and summary ops before publishing; review the paths they name.",
    cwe=532,
)
TFM006 = make_rule(
    "TFM006",
    "SavedModel asset path leaves the model directory",
    Severity.HIGH,
    "An AssetFileDef filename is joined to the SavedModel's assets/ directory on load; an "
    "absolute path or '..' points table initialisers and other asset readers at host files.",
    "Keep assets inside assets/; re-export the model.",
    cwe=22,
)

PYFUNC_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
FILE_OPS = frozenset(
    {
        "ReadFile", "WriteFile", "MatchingFiles", "MatchingFilesDataset",
        "ExperimentalMatchingFilesDataset", "WholeFileReader", "WholeFileReaderV2",
        "TextLineReader", "TextLineReaderV2", "FixedLengthRecordReader",
        "FixedLengthRecordReaderV2", "TFRecordReader", "TFRecordReaderV2", "LMDBReader",
        "ImmutableConst", "TextLineDataset", "TFRecordDataset", "TFRecordDatasetV2",
        "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2", "LMDBDataset",
        "ExperimentalLMDBDataset", "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset",
        "SqlDataset", "ExperimentalSqlDataset", "LoadDataset", "ExperimentalLoadDataset",
        "SaveDataset", "SaveDatasetV2", "DatasetToTFRecord", "ExperimentalDatasetToTFRecord",
        "SnapshotDataset", "SnapshotDatasetV2", "SnapshotDatasetReader", "DecodeWav",
    }
)  # fmt: skip
"""Ops that open host paths given at run time (ImmutableConst: from its attribute)."""
NETWORK_OPS = frozenset(
    {
        "Rpc", "TryRpc", "RpcClient", "RpcServer", "RpcServerStart", "RpcServerRegister",
        "RpcCall", "RpcCheckStatus", "RpcGetValue", "DataServiceDataset", "DataServiceDatasetV2",
        "DataServiceDatasetV3", "DataServiceDatasetV4", "RegisterDataset", "RegisterDatasetV2",
        "DistributedSave", "BigQueryReader", "GenerateBigQueryReaderPartitions",
    }
)  # fmt: skip
CHECKPOINT_OPS = frozenset(
    {
        "Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice",
        "MergeV2Checkpoints", "InitializeTableFromTextFile", "InitializeTableFromTextFileV2",
        "LoadAndRemapMatrix", "GenerateVocabRemapping",
    }
)  # fmt: skip
"""Path-taking ops every SavedModel has: flagged only when a constant path leaves the model."""
DEBUG_OPS = frozenset(
    {
        "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount",
        "DebugNumericSummary", "CreateSummaryFileWriter", "CreateSummaryDbWriter",
    }
)  # fmt: skip
PROTO_OPS = frozenset({"DecodeProtoV2", "EncodeProto"})
"""Their ``descriptor_source`` attribute may name a descriptor file on the host."""
DT_STRING = 7
MAX_CONST_STRINGS = 16
MAX_STRING = 4096
MAX_SCOPE_NODES = 5


@dataclass(slots=True)
class _Node:
    """What one NodeDef says that matters here; string values are cut to ``MAX_STRING``."""

    name: str = ""
    op: str = ""
    inputs: list[str] = field(default_factory=list)
    attrs: dict[str, list[str]] = field(default_factory=dict)
    """String attribute values (``s``, ``list.s`` and string tensors such as Const ``value``)."""
    n_strings: int = 0

    @property
    def strings(self) -> list[str]:
        """Every string attribute value of the node."""
        return [v for values in self.attrs.values() for v in values]

    def add(self, key: str, value: str) -> None:
        """Record one string value, keeping at most ``MAX_CONST_STRINGS`` per node."""
        if self.n_strings < MAX_CONST_STRINGS:
            self.attrs.setdefault(key, []).append(value)
            self.n_strings += 1


@dataclass(slots=True)
class _Hit:
    """Aggregated occurrences of one flagged op (or path) in the whole file."""

    rule: Rule
    op: str
    places: list[str] = field(default_factory=list)
    count: int = 0
    detail: str = ""
    severity: Severity | None = None


class SavedModelScanner:
    """See ``Scanner``: ``saved_model.pb`` / frozen ``GraphDef`` and ``keras_metadata.pb``."""

    name: ClassVar[str] = "tf-savedmodel"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset({ArtifactKind.TF_SAVEDMODEL})
    rules: ClassVar[tuple[Rule, ...]] = (
        TFM001,
        TFM002,
        TFM003,
        TFM004,
        TFM005,
        TFM006,
        *KERAS_CONFIG_RULES,
    )

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """See ``Scanner.scan``."""
        reader = ProtoReader(artifact.stream, artifact.size)
        lname = artifact.name.lower()
        if lname == "fingerprint.pb":
            # Hashes only; walk it so a malformed file is still reported.
            for _ in reader.fields(0, artifact.size):
                pass
            return
        if lname == "keras_metadata.pb":
            yield from self._keras_metadata(artifact, ctx, reader)
            return
        walk = _GraphWalk(reader, ctx)
        error: ArtifactError | None = None
        try:
            first = next(iter(reader.fields(0, artifact.size)), None)
            if first is not None and first.number == 1 and first.wire == LEN:
                walk.graph(0, artifact.size, "graph")  # A frozen GraphDef: field 1 is NodeDef.
            else:
                for f in reader.fields(0, artifact.size):
                    if f.number == 2 and f.wire == LEN:
                        walk.meta_graph(f)
        except ArtifactError as exc:
            error = exc  # Report what was found before the break, then the break itself.
        yield from walk.findings(artifact)
        seen: set[tuple[str, str]] = set()
        for text in walk.keras_metadata:
            config = parse_json_config(text, "SavedUserObject metadata", ctx.limits)
            hits = analyze_config(config, "object metadata")
            yield from _once(hits_to_findings(artifact, ctx, hits), seen)
        if error is not None:
            raise error

    def _keras_metadata(
        self, artifact: Artifact, ctx: ScanContext, reader: ProtoReader
    ) -> Iterator[Finding]:
        """SavedMetadata.nodes (1) -> SavedObject: node_path = 3, metadata = 5 (JSON)."""
        seen: set[tuple[str, str]] = set()
        for node in reader.fields(0, artifact.size):
            if node.number != 1 or node.wire != LEN:
                continue
            path = "?"
            metadata: bytes | None = None
            for f in reader.fields(node.offset, node.end):
                if f.number == 3 and f.wire == LEN:
                    path = reader.text(f, 256)
                elif f.number == 5 and f.wire == LEN:
                    metadata = reader.read(f, ctx.limits.max_header_bytes, "Keras metadata")
            if not metadata:
                continue
            config = parse_json_config(metadata, f"keras_metadata {path}", ctx.limits)
            hits = analyze_config(config, "keras_metadata")
            yield from _once(hits_to_findings(artifact, ctx, hits), seen)


def _once(findings: Iterator[Finding], seen: set[tuple[str, str]]) -> Iterator[Finding]:
    """Drop repeats: the model node's metadata repeats every layer's config."""
    for finding in findings:
        key = (finding.rule, finding.evidence)
        if key not in seen:
            seen.add(key)
            yield finding


class _GraphWalk:
    """Collects flagged ops across the main graph and every library function."""

    def __init__(self, reader: ProtoReader, ctx: ScanContext) -> None:
        self.reader = reader
        self.ctx = ctx
        self.hits: dict[tuple[str, str], _Hit] = {}
        self.keras_metadata: list[bytes] = []
        self.listed_ops: set[str] = set()
        """Flagged op names from MetaInfoDef.stripped_op_list (reported if no node uses them)."""

    def meta_graph(self, mg: Field) -> None:
        r = self.reader
        for f in r.fields(mg.offset, mg.end):
            if f.wire != LEN:
                continue
            if f.number == 1:  # MetaInfoDef.stripped_op_list (2) -> OpList.op (1) -> OpDef.name
                for g in r.fields(f.offset, f.end):
                    if g.number == 2 and g.wire == LEN:
                        for op in r.fields(g.offset, g.end):
                            if op.number == 1 and op.wire == LEN:
                                self._op_def(op)
            elif f.number == 2:
                self.graph(f.offset, f.end, "graph")
            elif f.number == 6:  # AssetFileDef.filename = 2
                for g in r.fields(f.offset, f.end):
                    if g.number == 2 and g.wire == LEN:
                        name = r.text(g, MAX_STRING)
                        if is_outside_path(name) or is_url(name):
                            self._add(TFM006, "asset", "asset_file_def", name)
            elif f.number == 7:
                self._object_graph(f)

    def _op_def(self, op: Field) -> None:
        for g in self.reader.fields(op.offset, op.end):
            if g.number == 1 and g.wire == LEN:
                name = self.reader.text(g, 256)
                if _op_rule(name) in (TFM001, TFM002, TFM003):
                    self.listed_ops.add(name)

    def _object_graph(self, og: Field) -> None:
        """SavedObjectGraph.nodes (1) -> SavedObject.user_object (4) -> metadata (3)."""
        r = self.reader
        for node in r.fields(og.offset, og.end):
            if node.number != 1 or node.wire != LEN:
                continue
            for f in r.fields(node.offset, node.end):
                if f.number == 4 and f.wire == LEN:
                    for g in r.fields(f.offset, f.end):
                        if g.number == 3 and g.wire == LEN and g.value:
                            raw = r.read(g, self.ctx.limits.max_header_bytes, "object metadata")
                            if raw.lstrip()[:1] == b"{":
                                self.keras_metadata.append(raw)

    def graph(self, start: int, end: int, scope: str) -> None:
        """GraphDef: node = 1, library = 2 (FunctionDefLibrary.function = 1)."""
        r = self.reader
        nodes: list[_Node] = []
        for f in r.fields(start, end):
            if f.wire != LEN:
                continue
            if f.number == 1:
                nodes.append(self._node(f))
            elif f.number == 2:
                for fn in r.fields(f.offset, f.end):
                    if fn.number == 1 and fn.wire == LEN:
                        self._function(fn)
        self._judge(nodes, scope)

    def _function(self, fn: Field) -> None:
        """FunctionDef: signature = 1 (OpDef.name = 1), node_def = 3."""
        r = self.reader
        name = "<function>"
        nodes: list[_Node] = []
        for f in r.fields(fn.offset, fn.end):
            if f.wire != LEN:
                continue
            if f.number == 1:
                for g in r.fields(f.offset, f.end):
                    if g.number == 1 and g.wire == LEN:
                        name = r.text(g, 256)
            elif f.number == 3:
                nodes.append(self._node(f))
        self._judge(nodes, f"function {name}")

    def _node(self, nf: Field) -> _Node:
        """NodeDef: name = 1, op = 2, input = 3, attr = 5 (map<string, AttrValue>)."""
        r = self.reader
        node = _Node()
        for f in r.fields(nf.offset, nf.end):
            if f.wire != LEN:
                continue
            if f.number == 1:
                node.name = r.text(f, 512)
            elif f.number == 2:
                node.op = r.text(f, 256)
            elif f.number == 3 and len(node.inputs) < 64:
                node.inputs.append(r.text(f, 512))
            elif f.number == 5:
                key = ""
                for g in r.fields(f.offset, f.end):  # map entry: key = 1, value = 2
                    if g.number == 1 and g.wire == LEN:
                        key = r.text(g, 256)
                    elif g.number == 2 and g.wire == LEN:
                        self._attr_value(g, key, node)
        return node

    def _attr_value(self, av: Field, key: str, node: _Node) -> None:
        """AttrValue: list = 1 (ListValue.s = 2), s = 2, tensor = 8 (TensorProto)."""
        r = self.reader
        for f in r.fields(av.offset, av.end):
            if f.wire != LEN:
                continue
            if f.number == 2:
                node.add(key, r.text(f, MAX_STRING))
            elif f.number == 1:
                for g in r.fields(f.offset, f.end):
                    if g.number == 2 and g.wire == LEN:
                        node.add(key, r.text(g, MAX_STRING))
            elif f.number == 8:
                self._tensor(f, key, node)

    def _tensor(self, tf: Field, key: str, node: _Node) -> None:
        """TensorProto: dtype = 1, string_val = 8; tensor_content (4) is never read."""
        r = self.reader
        dtype = 0
        values: list[str] = []
        for f in r.fields(tf.offset, tf.end):
            if f.number == 1 and f.wire == VARINT:
                dtype = f.value
            elif f.number == 8 and f.wire == LEN and len(values) < MAX_CONST_STRINGS:
                values.append(r.text(f, MAX_STRING))
        if dtype == DT_STRING:
            for value in values:
                node.add(key, value)

    def _judge(self, nodes: list[_Node], scope: str) -> None:
        consts = {n.name: n.attrs["value"] for n in nodes if n.op == "Const" and "value" in n.attrs}
        for node in nodes:
            place = f"{scope}: {node.name}"
            inputs = [i.lstrip("^").split(":", 1)[0] for i in node.inputs]
            input_strings = [s for i in inputs for s in consts.get(i, ())]
            odd = [s for s in input_strings + node.strings if is_outside_path(s) or is_url(s)]
            rule = _op_rule(node.op)
            if rule is TFM004:
                if odd:
                    self._add(TFM004, node.op, place, odd[0])
            elif rule is TFM005:
                urls = node.attrs.get("debug_urls", []) + node.attrs.get("dump_root", [])
                network = [s for s in urls if s.startswith("grpc://")]
                if network:
                    self._add(TFM003, node.op, place, network[0])
                else:
                    self._add(TFM005, node.op, place, (odd or urls or input_strings or [""])[0])
            elif rule is not None:
                self._add(rule, node.op, place, (odd or input_strings or node.strings or [""])[0])
            elif node.op == "PrintV2":
                stream = node.attrs.get("output_stream", [""])[0]
                if stream.startswith("file://"):
                    self._add(TFM005, node.op, place, stream)
            elif node.op in PROTO_OPS:
                source = node.attrs.get("descriptor_source", [""])[0]
                if source and source != "local://" and not source.startswith("bytes://"):
                    self._add(TFM002, node.op, place, source)

    def _add(self, rule: Rule, op: str, place: str, detail: str) -> None:
        hit = self.hits.setdefault((rule.id, op), _Hit(rule, op))
        hit.count += 1
        if len(hit.places) < MAX_SCOPE_NODES:
            hit.places.append(place)
        if detail and not hit.detail:
            hit.detail = detail

    def findings(self, artifact: Artifact) -> Iterator[Finding]:
        """One finding per flagged op (or asset path), listing the first places it occurs."""
        used = {op for _rule, op in self.hits}
        for op in sorted(self.listed_ops - used):
            rule = _op_rule(op)
            if rule is not None:
                self._add(rule, op, "stripped_op_list", "")
        for hit in self.hits.values():
            where = ", ".join(hit.places)
            more = f" (+{hit.count - len(hit.places)} more)" if hit.count > len(hit.places) else ""
            evidence = f"op={hit.op} at {where}{more}"
            if hit.detail:
                evidence = f"op={hit.op} path={hit.detail!r} at {where}{more}"
            message = f"{hit.rule.title}: {hit.op} ×{hit.count}"
            if hit.rule is TFM006:
                evidence = f"asset filename={hit.detail!r}"
                message = f"asset file {hit.detail!r} is outside assets/"
            yield artifact.finding(
                hit.rule,
                message,
                evidence=evidence,
                severity=hit.severity,
                confidence=Confidence.HIGH,
            )


def _op_rule(op: str) -> Rule | None:
    if op in PYFUNC_OPS:
        return TFM001
    if op in FILE_OPS:
        return TFM002
    if op in NETWORK_OPS:
        return TFM003
    if op in CHECKPOINT_OPS:
        return TFM004
    if op in DEBUG_OPS:
        return TFM005
    return None
