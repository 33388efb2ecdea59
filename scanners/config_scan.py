"""Model configs (``config.json``, ``tokenizer_config.json``…) that make loaders run repo code.

``auto_map`` and ``custom_pipelines`` entries tell ``transformers`` which Python file and class to
import when the model is loaded with ``trust_remote_code`` enabled; diffusers ``model_index.json``
does the same with ``[module, class]`` pairs. The config is the switch that turns a data download
into code execution, so every reference is reported, with where the code would come from: a file
beside the config (scanned by ``CodeScanner``), a file missing here (fetched from the hub at load
time, never reviewed), another repository, or a path outside the model directory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import ClassVar

from scanners._jsonpos import JsonSource, Step, byte_offset
from scanners._yaml import (
    YamlDoc,
    YamlError,
    load_yaml_bounded,
    looks_like_go_template,
    may_hold_keys,
    read_yaml_text,
    short_error,
)
from scanners.base import Artifact, ScanContext, note_sibling_read
from supplychain.core.errors import LimitExceeded
from supplychain.core.model import ArtifactKind, Confidence, Finding, Rule, Severity
from supplychain.core.rules import make_rule

_REFS = (
    "https://huggingface.co/docs/transformers/custom_models",
    "https://huggingface.co/docs/transformers/main/en/add_new_pipeline",
)
CHUNK = 1 << 20
MAX_WALK_NODES = 2_000_000
"""Containers visited when looking for nested ``trust_remote_code`` keys (bounded time); lists
of plain values (a tokenizer's merges or unigram vocabulary) are not descended into."""

CFG001 = make_rule(
    "CFG001",
    "Config requires remote code (auto_map)",
    Severity.HIGH,
    "auto_map names a Python module and class that transformers imports when the model is "
    "loaded with trust_remote_code enabled. Importing runs the module's top-level code, so the "
    "model is code, not data. A referenced file missing beside the config is downloaded from the "
    "hub at load time and has not been reviewed.",
    "Review the referenced files (see COD findings) or use a model whose architecture is built "
    "into the library; never set trust_remote_code for unreviewed repositories, and pin the "
    "revision (commit) you reviewed.",
    cwe=94,
    references=_REFS,
)
CFG002 = make_rule(
    "CFG002",
    "Config pulls code from another repository",
    Severity.CRITICAL,
    "An auto_map or custom pipeline entry of the form 'owner/repo--module.Class' imports code "
    "from a different repository than the one being reviewed. That code is outside this scan, can "
    "change at any time (it is fetched at its latest revision) and is controlled by someone else.",
    "Do not load the model with trust_remote_code; review and vendor the referenced code, or pin "
    "code_revision to a reviewed commit.",
    cwe=829,
    references=_REFS,
)
CFG003 = make_rule(
    "CFG003",
    "Config code reference escapes the model directory",
    Severity.CRITICAL,
    "A module reference is absolute, uses '..' or another path trick. For a local model directory "
    "transformers joins it to the directory, so it can import Python from anywhere on disk.",
    "Treat the config as malicious.",
    cwe=22,
    references=_REFS,
)
CFG004 = make_rule(
    "CFG004",
    "Custom pipeline code in config",
    Severity.HIGH,
    "custom_pipelines (transformers) or a list-valued _class_name / custom component "
    "(diffusers) names repository code that the pipeline imports with trust_remote_code.",
    "Review the referenced code before building a pipeline from this model.",
    cwe=94,
    references=_REFS,
)
CFG005 = make_rule(
    "CFG005",
    "Config enables trust_remote_code",
    Severity.MEDIUM,
    "The config itself sets trust_remote_code to true, so tools that pass config values through "
    "as keyword arguments would run repository code without the user opting in.",
    "Remove the key; trust must be granted by the user, per reviewed revision.",
    cwe=94,
)
CFG006 = make_rule(
    "CFG006",
    "Malformed model config",
    Severity.HIGH,
    "A file named like a model config is not valid JSON (or not UTF-8), so it could not be "
    "checked for remote-code references. Loaders that are more lenient than Python's json module "
    "may still read it.",
    "Re-download the file from a trusted source and inspect it by hand.",
    cwe=20,
)
CFG007 = make_rule(
    "CFG007",
    "Duplicate key hides a config value",
    Severity.HIGH,
    "A security-relevant key (auto_map, custom_pipelines, trust_remote_code…) appears twice in one "
    "object. Python keeps the last value while other parsers keep the first, so a reviewer or "
    "scanner can be shown a harmless value while the loader uses another.",
    "Treat the config as tampered; remove the duplicates and review the value the loader uses.",
    cwe=436,
)
CFG008 = make_rule(
    "CFG008",
    "Malformed remote-code reference",
    Severity.LOW,
    "An auto_map/custom pipeline entry is not of the form '[owner/repo--]module.Class'. The loader "
    "would fail on it, but it is still an attempt to reference code.",
    "Inspect the config by hand.",
    cwe=20,
)
CFG009 = make_rule(
    "CFG009",
    "YAML config constructs Python objects",
    Severity.CRITICAL,
    "The YAML carries ``!!python/...`` tags (``python/object/apply``, ``python/name``…). "
    "``yaml.load`` with the unsafe or full loader (older PyYAML, some training frameworks and "
    "config tools) builds those objects, which runs code while the config is read. A config has "
    "no reason to name Python callables this way.",
    "Do not load this file; replace the tagged values with plain YAML and load configs only with "
    "yaml.safe_load.",
    cwe=502,
)
CFG010 = make_rule(
    "CFG010",
    "YAML config could not be analysed",
    Severity.HIGH,
    "The file was identified as YAML but does not parse as YAML (or is not UTF-8), so it could "
    "not be checked for remote-code switches, Python object tags or chat templates. Loaders more "
    "lenient than PyYAML may still read it; an unanalysed config fails closed.",
    "Fix the YAML, or inspect the file by hand and remove it from the model directory.",
    cwe=20,
)
CONFIG_RULES: tuple[Rule, ...] = (
    CFG001,
    CFG002,
    CFG003,
    CFG004,
    CFG005,
    CFG006,
    CFG007,
    CFG008,
    CFG009,
    CFG010,
)
"""Largest YAML parsed (pure-Python parser): real configs and model cards are KiB."""

LOADER_CONFIGS = frozenset(
    {
        "config.json",
        "tokenizer_config.json",
        "preprocessor_config.json",
        "processor_config.json",
        "feature_extractor_config.json",
        "image_processor_config.json",
        "video_preprocessor_config.json",
    }
)
"""Files whose auto_map the transformers Auto* classes read."""
WATCHED_KEYS = frozenset(
    {"auto_map", "custom_pipelines", "trust_remote_code", "_class_name", "impl", "model_type"}
)
_MARKERS = (b"auto_map", b"custom_pipelines", b"trust_remote_code", b"_class_name", b"\\u")
_MODULE_OK = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(/[A-Za-z_][A-Za-z0-9_\-]*)*$")
_REPO_OK = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_KNOWN_LIBRARIES = frozenset({"diffusers", "transformers", "onnxruntime.training", "peft"})


def is_config_name(name: str) -> bool:
    """Names Hugging Face tooling reads as configs (malformed ones are worth a finding)."""
    low = name.lower()
    return (
        low in LOADER_CONFIGS
        or low == "model_index.json"
        or (low.endswith("_config.json"))
        or (low.startswith("config") and low.endswith(".json"))
    )


@dataclass(frozen=True, slots=True)
class CodeRef:
    """One parsed ``[repo--]module.Class`` reference."""

    raw: str
    repo: str | None
    module: str
    cls: str

    @property
    def file(self) -> str:
        """The file transformers would import for it."""
        return f"{self.module}.py"


@dataclass(slots=True)
class _Dupes:
    """Duplicate watched keys seen while parsing (Python's json keeps the last value)."""

    keys: list[str] = field(default_factory=list)

    def hook(self, pairs: list[tuple[str, object]]) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, value in pairs:
            if key in out and (key in WATCHED_KEYS or key.startswith("Auto")):
                self.keys.append(key)
            out[key] = value
        return out


def parse_ref(raw: str) -> CodeRef | None:
    """Split ``owner/repo--module.Class`` the way ``get_class_from_dynamic_module`` does."""
    repo: str | None = None
    rest = raw
    if "--" in raw:
        parts = raw.split("--")
        if len(parts) != 2:
            return None
        repo, rest = parts
    if rest.count(".") != 1:
        return None
    module, cls = rest.split(".")
    if not module or not cls:
        return None
    return CodeRef(raw=raw, repo=repo, module=module, cls=cls)


def _escapes(module: str) -> bool:
    """Absolute, parent-relative, home-relative or drive paths, or odd characters."""
    if module.startswith(("/", "\\", "~")) or re.match(r"^[A-Za-z]:", module):
        return True
    parts = re.split(r"[/\\]", module)
    return any(p in ("..", "") for p in parts) or "\\" in module or "\x00" in module


class ConfigScanner:
    """auto_map / custom_pipelines / trust_remote_code in JSON configs beside weights."""

    name: ClassVar[str] = "model-config"
    kinds: ClassVar[frozenset[ArtifactKind]] = frozenset(
        {ArtifactKind.MODEL_CONFIG, ArtifactKind.YAML_CONFIG}
    )
    rules: ClassVar[tuple[Rule, ...]] = CONFIG_RULES

    def scan(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """See ``Scanner.scan``. Chat templates in the same files are left to TemplateScanner."""
        if artifact.kind is ArtifactKind.YAML_CONFIG:
            yield from self._yaml(artifact, ctx)
            return
        cap = ctx.limits.max_header_bytes
        config_name = is_config_name(artifact.name)
        if artifact.size > cap:
            if config_name or _stream_has_markers(artifact, ctx.limits.max_read_bytes):
                raise LimitExceeded(f"config of {artifact.size} bytes is over the {cap} cap")
            return  # a large JSON document nobody loads as a config, with no reference in it
        data = artifact.stream.read(cap + 1)
        if len(data) > cap:
            raise LimitExceeded(f"config is over the {cap} byte cap")
        if not config_name and not any(m in data for m in _MARKERS):
            return  # fast path for vocab.json, tokenizer.json and the like
        dupes = _Dupes()
        text = ""
        try:
            text = data.decode("utf-8")
            doc = json.loads(text, object_pairs_hook=dupes.hook)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            # A config-named file, or any JSON that names a code reference, that we cannot read
            # was not analysed: fail closed.
            reason = (
                "nested too deeply to parse"
                if isinstance(exc, RecursionError)
                else short_error(exc)
            )
            yield artifact.finding(
                CFG006,
                f"{artifact.name} does not parse as JSON ({reason}); it could not be checked for "
                "remote-code references, so this fails closed",
                evidence=data[:120].decode("utf-8", "replace"),
                offset=_error_offset(exc, text),
            )
            return
        src = JsonSource(data)
        for key in sorted(set(dupes.keys)):
            yield artifact.finding(
                CFG007,
                f"duplicate key {key!r}: the loader uses the last value",
                evidence=key,
                offset=src.duplicate_key(key),
            )
        if not isinstance(doc, dict):
            yield from _trust_flags(artifact, doc, src)  # parsed; no loader reads it as a config
            return
        loader = artifact.name.lower() in LOADER_CONFIGS
        if artifact.name.lower() == "config.json":
            for key, value in config_facts(doc):
                ctx.emit(artifact.fact(key, value))
        yield from self._auto_map(artifact, doc.get("auto_map"), loader, src)
        yield from self._custom_pipelines(artifact, doc.get("custom_pipelines"), src)
        if artifact.name.lower() == "model_index.json":
            yield from self._diffusers(artifact, doc, src)
        yield from _trust_flags(artifact, doc, src)

    def _yaml(self, artifact: Artifact, ctx: ScanContext) -> Iterator[Finding]:
        """YAML beside weights: parsed safely; broken or oversized YAML fails closed."""
        text = read_yaml_text(artifact, ctx)
        if text is None:
            yield artifact.finding(
                CFG010,
                f"{artifact.name} is not UTF-8 text, so it could not be analysed as YAML; "
                "this fails closed",
            )
            return
        try:
            parsed = load_yaml_bounded(text)
        except YamlError as exc:
            if looks_like_go_template(text):
                return  # a Helm/Go template: not YAML until its tool renders it, never loaded
            yield artifact.finding(
                CFG010,
                f"{artifact.name} does not parse as YAML ({exc}); it could not be analysed, "
                "so this fails closed",
                evidence=text[:120],
            )
            return
        for tag in sorted(set(parsed.python_tags)):
            yield artifact.finding(
                CFG009,
                f"YAML tag {tag.removeprefix('tag:yaml.org,2002:')!r} makes an unsafe "
                "yaml.load construct a Python object (code runs while the config is read)",
                evidence=tag,
            )
        for doc in parsed.documents:
            if isinstance(doc, dict):
                yield from self._auto_map(artifact, doc.get("auto_map"), loader=False)
                yield from self._custom_pipelines(artifact, doc.get("custom_pipelines"))
            yield from _trust_flags(artifact, doc)

    def _auto_map(
        self, artifact: Artifact, auto_map: object, loader: bool, src: JsonSource | None = None
    ) -> Iterator[Finding]:
        """``src`` (a JSON config's bytes) places each finding on its value; YAML has none."""
        if auto_map is None:
            return
        at = _Where(src, ("auto_map",))
        if not isinstance(auto_map, dict):
            yield artifact.finding(
                CFG008, "auto_map is not an object", evidence=repr(auto_map)[:120], offset=at()
            )
            return
        by_file: dict[tuple[str | None, str], list[str]] = {}
        refs: dict[tuple[str | None, str], CodeRef] = {}
        places: dict[tuple[str | None, str], _Where] = {}
        for auto_class, value in auto_map.items():
            entries = value if isinstance(value, list) else [value]
            for i, entry in enumerate(entries):
                here = at.down(auto_class, i) if isinstance(value, list) else at.down(auto_class)
                if entry is None:
                    continue  # tokenizers: [slow, fast] with one side unset
                if not isinstance(entry, str):
                    yield artifact.finding(
                        CFG008,
                        f"auto_map[{auto_class!r}] is not a class reference",
                        evidence=repr(entry)[:120],
                        offset=here(),
                    )
                    continue
                ref = parse_ref(entry)
                if ref is None:
                    yield _bad_ref(artifact, f"auto_map[{auto_class!r}]", entry, here())
                    continue
                key = (ref.repo, ref.module)
                by_file.setdefault(key, []).append(f"{auto_class}={ref.cls}")
                refs.setdefault(key, ref)
                places.setdefault(key, here)
        for key in sorted(by_file, key=lambda k: (k[0] or "", k[1])):
            yield from self._reference(
                artifact,
                refs[key],
                f"auto_map ({', '.join(by_file[key])})",
                CFG001,
                loader,
                places[key](),
            )

    def _custom_pipelines(
        self, artifact: Artifact, pipelines: object, src: JsonSource | None = None
    ) -> Iterator[Finding]:
        if not isinstance(pipelines, dict):
            return
        at = _Where(src, ("custom_pipelines",))
        for task, spec in pipelines.items():
            impl = spec.get("impl") if isinstance(spec, dict) else None
            if impl is None:
                continue
            offset = at.down(task, "impl")()
            ref = parse_ref(impl) if isinstance(impl, str) else None
            if ref is None:
                yield _bad_ref(artifact, f"custom_pipelines[{task!r}].impl", impl, offset)
                continue
            yield from self._reference(
                artifact, ref, f"custom pipeline {task!r}", CFG004, True, offset
            )

    def _reference(
        self,
        artifact: Artifact,
        ref: CodeRef,
        what: str,
        rule: Rule,
        loader: bool,
        offset: int | None = None,
    ) -> Iterator[Finding]:
        """One finding per referenced module: where the code would come from, and if it is here."""
        if _escapes(ref.module) or not _MODULE_OK.match(ref.module):
            yield artifact.finding(
                CFG003,
                f"{what} references module {ref.module!r}, a path outside the model directory",
                evidence=ref.raw,
                offset=offset,
            )
            return
        if ref.repo is not None:
            bad_repo = not _REPO_OK.match(ref.repo)
            yield artifact.finding(
                CFG002,
                f"{what} imports {ref.file} from another repository {ref.repo!r}"
                + (" (not a valid repository id)" if bad_repo else "")
                + "; that code is outside this scan and fetched at load time",
                evidence=ref.raw,
                offset=offset,
            )
            return
        presence = _presence(artifact, ref.file)
        severity = rule.severity if loader else Severity.MEDIUM
        note = "" if loader else f"; {artifact.name} is not read by the transformers Auto classes"
        yield artifact.finding(
            rule,
            f"{what} needs trust_remote_code and imports {ref.file} ({presence}){note}",
            evidence=ref.raw,
            offset=offset,
            severity=severity,
            confidence=Confidence.HIGH,
        )

    def _diffusers(
        self, artifact: Artifact, doc: dict[str, object], src: JsonSource | None = None
    ) -> Iterator[Finding]:
        """diffusers: ``_class_name: [module, Class]`` and ``component: [module, Class]`` code."""
        at = _Where(src, ())
        cls_name = doc.get("_class_name")
        if isinstance(cls_name, list) and len(cls_name) == 2 and isinstance(cls_name[0], str):
            module = cls_name[0]
            ref = CodeRef(raw=f"{module}.{cls_name[1]}", repo=None, module=module, cls="")
            yield from self._reference(
                artifact,
                ref,
                "diffusers custom pipeline (_class_name)",
                CFG004,
                True,
                at.down("_class_name")(),
            )
        for component, value in sorted(doc.items()):
            if component.startswith("_") or not isinstance(value, list) or len(value) != 2:
                continue
            library = value[0]
            if not isinstance(library, str) or library in _KNOWN_LIBRARIES:
                continue
            relative = f"{component}/{library}.py"
            if _escapes(library) or _escapes(component):
                yield artifact.finding(
                    CFG003,
                    f"diffusers component {component!r} references {relative!r}",
                    evidence=f"{component}: {value!r}",
                    offset=at.down(component)(),
                )
            elif _sibling_exists(artifact, relative):
                yield artifact.finding(
                    CFG004,
                    f"diffusers component {component!r} loads custom code {relative} "
                    "(needs trust_remote_code)",
                    evidence=f"{component}: {value!r}",
                    offset=at.down(component)(),
                )


CONFIG_FACT_SCALARS = (
    "model_type",
    "problem_type",
    "torch_dtype",
    "dtype",
    "transformers_version",
    "num_labels",
    "hidden_size",
    "num_hidden_layers",
    "vocab_size",
    "max_position_embeddings",
)
"""Scalar ``config.json`` keys kept as ``config.<key>`` facts (the AI-BOM model card reads them)."""


def config_facts(doc: dict[str, object]) -> Iterator[tuple[str, str | int | tuple[str, ...]]]:
    """``config.*`` facts from a parsed ``config.json``: only what is there, never guessed."""
    for key in CONFIG_FACT_SCALARS:
        value = doc.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, str | int):
            yield f"config.{key}", value
    architectures = doc.get("architectures")
    if isinstance(architectures, list):
        names = tuple(a for a in architectures if isinstance(a, str))
        if names:
            yield "config.architectures", names
    id2label = doc.get("id2label")
    if isinstance(id2label, dict):
        yield "config.id2label.count", len(id2label)
    auto_map = doc.get("auto_map")
    if isinstance(auto_map, dict):
        files: set[str] = set()
        for value in auto_map.values():
            for entry in value if isinstance(value, list) else [value]:
                ref = parse_ref(entry) if isinstance(entry, str) else None
                if ref is not None:
                    files.add(f"{ref.repo}--{ref.file}" if ref.repo else ref.file)
        if files:
            yield "config.auto_map.files", tuple(sorted(files))


def _bad_ref(artifact: Artifact, where: str, raw: object, offset: int | None = None) -> Finding:
    """An unparsable reference: path-like ones are escapes (other loaders split differently)."""
    text = raw if isinstance(raw, str) else repr(raw)
    module = text.split("--", 1)[-1].rsplit(".", 1)[0]
    if isinstance(raw, str) and (_escapes(module) or ".." in text):
        return artifact.finding(
            CFG003,
            f"{where} references {text!r}, a path outside the model directory",
            evidence=text,
            offset=offset,
        )
    return artifact.finding(
        CFG008, f"{where} is not '[owner/repo--]module.Class'", evidence=text[:200], offset=offset
    )


def _trust_flags(
    artifact: Artifact, doc: object, src: JsonSource | None = None
) -> Iterator[Finding]:
    """``"trust_remote_code": true`` anywhere in the document (bounded walk, no recursion)."""
    stack: list[tuple[object, str, _Where]] = [(doc, "$", _Where(src, ()))]
    seen = 0
    while stack:
        node, where, at = stack.pop()
        seen += 1
        if seen > MAX_WALK_NODES:
            raise LimitExceeded(
                f"config has more than {MAX_WALK_NODES} nested values; the search for "
                "trust_remote_code stopped there"
            )
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "trust_remote_code" and value is True:
                    yield artifact.finding(
                        CFG005,
                        f"config sets trust_remote_code to true at {where}",
                        evidence=f"{where}.trust_remote_code = true",
                        offset=at.down(key)(),
                    )
                elif may_hold_keys(value):
                    stack.append((value, f"{where}.{key}", at.down(key)))
        elif isinstance(node, list):
            stack.extend(
                (v, f"{where}[{i}]", at.down(i)) for i, v in enumerate(node) if may_hold_keys(v)
            )


@dataclass(frozen=True, slots=True)
class _Where:
    """A JSON value's path, turned into its byte offset only when a finding needs it."""

    src: JsonSource | None
    steps: tuple[Step, ...]

    def down(self, *steps: Step) -> _Where:
        return _Where(self.src, (*self.steps, *steps))

    def __call__(self) -> int | None:
        return None if self.src is None else self.src.value_offset(self.steps)


def _error_offset(exc: BaseException, text: str) -> int | None:
    """Byte offset of a decode or parse error (``json`` counts characters, not bytes)."""
    if isinstance(exc, UnicodeDecodeError):
        return exc.start
    pos = getattr(exc, "pos", None)
    return byte_offset(text, pos) if isinstance(pos, int) else None


def _presence(artifact: Artifact, relative: str) -> str:
    if artifact.fs_path is None:
        return "not a file on disk, so presence was not checked"
    if _sibling_exists(artifact, relative):
        return "present beside the config"
    return "MISSING beside the config: it would be downloaded from the hub at load time, unreviewed"


def _sibling_exists(artifact: Artifact, relative: str) -> bool:
    """Whether ``relative`` exists next to the config, without leaving the scan root."""
    if artifact.fs_path is None or _escapes(relative):
        return False
    note_sibling_read(f"code file {relative!r}")
    base = artifact.fs_path.parent
    target = base.joinpath(*PurePosixPath(relative).parts)
    try:
        resolved = target.resolve()
        root = (artifact.root or base).resolve()
        return resolved.is_relative_to(root) and resolved.is_file()
    except (OSError, RuntimeError):
        return False


def _stream_has_markers(artifact: Artifact, max_bytes: int) -> bool:
    """Streamed search for reference keys in an oversized JSON file (bounded memory)."""
    stream = artifact.stream
    stream.seek(0)
    tail = b""
    read = 0
    while read < max_bytes:
        block = stream.read(CHUNK)
        if not block:
            return False
        read += len(block)
        window = tail + block
        if any(m in window for m in _MARKERS[:4]):
            return True
        tail = window[-32:]
    return True  # could not look at all of it: do not call it clean


__all__ = [
    "CONFIG_RULES",
    "CodeRef",
    "ConfigScanner",
    "YamlDoc",
    "YamlError",
    "config_facts",
    "is_config_name",
    "load_yaml_bounded",
    "looks_like_go_template",
    "parse_ref",
    "read_yaml_text",
]
