"""Keras model configs: the KER rules and the config-tree analysis, never loading anything.

Shared by the Keras scanner (``.keras`` zips, HDF5 attributes) and the SavedModel scanner
(``keras_metadata.pb``), so neither format scanner imports the other.

A Keras config is a tree of ``{"module", "class_name", "config", "registered_name"}`` objects that
the loader turns into imports and calls. Everything that matters is in that tree: ``Lambda``
layers carry marshalled Python bytecode, and any node may name a module and function the loader
will import (CVE-2025-1550 and the later ``safe_mode`` bypasses through ``keras.utils.get_file``,
``keras.config.enable_unsafe_deserialization``, ``TFSMLayer`` and lookup-layer vocabulary paths).
The same analysis runs on ``keras_metadata.pb`` JSON from TensorFlow SavedModels (``tf_scan``).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scanners._paths import is_outside_path, is_url
from scanners.base import Artifact, ScanContext
from supplychain.core.errors import (
    ArtifactError,
    LimitExceeded,
)
from supplychain.core.model import ArtifactKind, Confidence, Finding, Rule, Severity
from supplychain.core.rules import make_rule

if TYPE_CHECKING:
    from supplychain.core.limits import Limits

CVE_2025_1550 = "https://www.sentinelone.com/vulnerability-database/cve-2025-1550/"
KERAS_SAFE_MODE = "https://keras.io/api/models/model_saving_apis/model_saving_and_loading/"

KER001 = make_rule(
    "KER001",
    "Lambda layer with embedded Python bytecode",
    Severity.CRITICAL,
    "Keras Lambda layers store the function as marshalled Python bytecode (base64 in the config). "
    "Loading the model with safe_mode off (or with Keras 2 / tf.keras, or a legacy .h5 file, "
    "CVE-2025-9905) rebuilds and runs that code. The names and strings listed are read from the "
    "bytecode without unmarshalling it.",
    "Do not load the model outside a sandbox. Ask the publisher for a version without Lambda "
    "layers (custom layers registered from reviewed code, or plain weights in safetensors).",
    cwe=94,
    references=(KERAS_SAFE_MODE,),
)
KER002 = make_rule(
    "KER002",
    "Config names a dangerous module or function",
    Severity.CRITICAL,
    "The config tells the loader to import a module such as os, subprocess or builtins, or a "
    "Keras/TensorFlow function that fetches files or turns safe_mode off (get_file, "
    "enable_unsafe_deserialization, py_function...). Keras before 3.9 imported any module a "
    "config named even with safe_mode on (CVE-2025-1550); later bypasses used functions inside "
    "the keras namespace itself.",
    "Treat the model as malicious. Do not load it; report it to the hosting platform.",
    cwe=502,
    references=(CVE_2025_1550,),
)
KER003 = make_rule(
    "KER003",
    "Config references code outside Keras and TensorFlow",
    Severity.MEDIUM,
    "A config object names a module outside keras, keras_hub/keras_nlp/keras_cv and tensorflow. "
    "Loading imports that module (running its import-time code) and calls what the config names.",
    "Check that the module is a dependency you trust and pin it; otherwise do not load the model.",
    cwe=829,
    references=(CVE_2025_1550,),
)
KER004 = make_rule(
    "KER004",
    "Custom object needs code from outside the file",
    Severity.LOW,
    "The config uses a registered custom object or a class name Keras does not ship. The model "
    "only loads when matching code is imported first, and that code runs with the loader's rights.",
    "Review the package that provides the custom object before loading the model.",
    cwe=829,
)
KER005 = make_rule(
    "KER005",
    "Config reads files or URLs outside the model",
    Severity.HIGH,
    "A TFSMLayer loads and runs an external SavedModel, and a lookup layer's string vocabulary "
    "or a path-like setting makes the loader read a host file or fetch a URL when the model is "
    "built (arbitrary file read, SSRF). Absolute paths, '..' and URLs leave the archive.",
    "Ship vocabularies and sub-models inside the archive; do not load models that point at host "
    "paths or URLs.",
    cwe=73,
)
KER006 = make_rule(
    "KER006",
    "Unexpected content in a .keras archive",
    Severity.MEDIUM,
    "A .keras archive holds config.json, metadata.json, the weights and assets/. Extra members, "
    "duplicate names, path-traversal names or a malformed directory let a different loader see "
    "different content than a scanner did, or hide a payload (each member is scanned as well).",
    "Re-export the model with Keras and compare; remove members you cannot explain.",
    cwe=434,
)
KER007 = make_rule(
    "KER007",
    "HDF5 file pulls data from other files",
    Severity.MEDIUM,
    "HDF5 external links, external dataset storage and virtual datasets make h5py read other "
    "files on the loading machine when the weights are read. Absolute paths and '..' reach host "
    "files (information disclosure into the model).",
    "Rewrite the file with the data stored inside it (h5py copy without external links).",
    cwe=73,
)
KER008 = make_rule(
    "KER008",
    "Serialized Python object embedded in a Keras config",
    Severity.CRITICAL,
    "TorchModuleWrapper stores a torch.save() pickle of a PyTorch module in its config; loading "
    "unpickles it, which can run arbitrary code. The embedded bytes are also scanned on their own.",
    "Do not load the model; ask for weights in safetensors and the layer as reviewed code.",
    cwe=502,
)
KERAS_CONFIG_RULES: tuple[Rule, ...] = (KER001, KER002, KER003, KER004, KER005, KER008)
"""Rules the config analysis can emit (shared with the SavedModel scanner)."""

KERAS_NAMESPACES = frozenset(
    {"keras", "keras_nlp", "keras_hub", "keras_cv", "keras_rs", "keras_core", "tf_keras"}
    | {"tensorflow", "tf"}
)
"""Top-level packages whose objects Keras itself ships (and safe_mode trusts)."""
DANGEROUS_MODULES = frozenset(
    {
        "builtins", "__builtin__", "__builtins__", "os", "posix", "nt", "sys", "subprocess",
        "importlib", "runpy", "shutil", "socket", "pickle", "_pickle", "cPickle", "marshal",
        "ctypes", "cffi", "code", "codeop", "pty", "commands", "webbrowser", "urllib", "urllib2",
        "urllib3", "requests", "httpx", "http", "ftplib", "smtplib", "telnetlib", "multiprocessing",
        "asyncio", "signal", "types", "inspect", "gc", "operator", "functools", "dill",
        "cloudpickle", "joblib", "torch", "yaml", "pydoc", "timeit", "tempfile", "pathlib", "io",
        "platform", "sysconfig", "pip", "setuptools", "distutils", "zipimport", "imp", "threading",
        "_thread", "bdb", "pdb", "trace",
    }
)  # fmt: skip
"""Modules no model config has a reason to name: each gives code execution or host access."""
DANGEROUS_NAMES = frozenset(
    {
        "system", "popen", "Popen", "exec", "eval", "compile", "__import__", "getattr", "setattr",
        "open", "execv", "execve", "execl", "execvp", "spawn", "spawnv", "spawnl", "fork",
        "check_output", "check_call", "call", "run", "run_path", "run_module", "import_module",
        "load", "loads", "urlopen", "urlretrieve", "remove", "unlink", "rmtree", "rename",
        "get_file", "enable_unsafe_deserialization", "load_model", "load_weights",
        "load_op_library", "load_library", "extract_archive", "py_function", "numpy_function",
        "py_func", "read_file", "write_file", "copyfile", "makedirs",
    }
)  # fmt: skip
"""Callables that read, write, fetch, execute or switch safe_mode off, wherever they live."""
KERAS_DANGEROUS_NAMES = frozenset(
    {
        "get_file", "enable_unsafe_deserialization", "load_model", "load_weights",
        "load_op_library", "load_library", "extract_archive", "py_function", "numpy_function",
        "py_func", "read_file", "write_file", "exec", "eval", "system", "popen", "import_module",
        "__import__", "urlopen", "urlretrieve", "getattr",
    }
)  # fmt: skip
"""Callables inside keras/tf used by safe_mode bypasses (CVE-2025-8747, CVE-2025-9906...)."""
DANGEROUS_MODULE_PARTS = frozenset({"gfile", "script_ops", "file_utils", "saving", "config"})
"""Module path segments inside keras/tf that hold file access or safe_mode switches."""
TRUSTED_REGISTRY_PACKAGES = frozenset({"keras", "keras_nlp", "keras_hub", "keras_cv", "keras_rs"})

BUILTIN_CLASS_NAMES = frozenset(
    """
    InputLayer Input Dense EinsumDense Activation Dropout SpatialDropout1D SpatialDropout2D
    SpatialDropout3D GaussianDropout GaussianNoise AlphaDropout Flatten Reshape Permute
    RepeatVector Lambda Masking Embedding Conv1D Conv2D Conv3D Conv1DTranspose Conv2DTranspose
    Conv3DTranspose SeparableConv1D SeparableConv2D DepthwiseConv1D DepthwiseConv2D Convolution1D
    Convolution2D Convolution3D Convolution2DTranspose Convolution3DTranspose Cropping1D
    Cropping2D Cropping3D UpSampling1D UpSampling2D UpSampling3D ZeroPadding1D ZeroPadding2D
    ZeroPadding3D MaxPooling1D MaxPooling2D MaxPooling3D AveragePooling1D AveragePooling2D
    AveragePooling3D MaxPool1D MaxPool2D MaxPool3D AvgPool1D AvgPool2D AvgPool3D
    GlobalMaxPooling1D GlobalMaxPooling2D GlobalMaxPooling3D GlobalAveragePooling1D
    GlobalAveragePooling2D GlobalAveragePooling3D GlobalMaxPool1D GlobalMaxPool2D GlobalMaxPool3D
    GlobalAvgPool1D GlobalAvgPool2D GlobalAvgPool3D LocallyConnected1D LocallyConnected2D RNN
    SimpleRNN GRU LSTM SimpleRNNCell GRUCell LSTMCell StackedRNNCells ConvLSTM1D ConvLSTM2D
    ConvLSTM3D ConvLSTM1DCell ConvLSTM2DCell ConvLSTM3DCell PeepholeLSTMCell Bidirectional
    TimeDistributed CuDNNGRU CuDNNLSTM GRUV1 GRUV2 LSTMV1 LSTMV2 Wrapper BatchNormalization
    BatchNormalizationV1 BatchNormalizationV2 LayerNormalization GroupNormalization
    UnitNormalization SyncBatchNormalization RMSNormalization SpectralNormalization Normalization
    Attention AdditiveAttention MultiHeadAttention GroupedQueryAttention Add Subtract Multiply
    Average Maximum Minimum Concatenate Dot ReLU LeakyReLU PReLU ELU ThresholdedReLU Softmax
    Identity StringLookup IntegerLookup TextVectorization CategoryEncoding Hashing HashedCrossing
    Discretization Rescaling Resizing CenterCrop RandomCrop RandomFlip RandomRotation RandomZoom
    RandomContrast RandomBrightness RandomTranslation RandomHeight RandomWidth AutoContrast
    RandomGrayscale RandomHue RandomSaturation Solarization RandomColorJitter RandomSharpness
    RandomShear RandomPosterization RandomInvert RandomErasing RandomGaussianBlur
    RandomPerspective RandomElasticTransform RandomColorDegeneration Equalization MixUp CutMix
    AugMix RandAugment Pipeline MelSpectrogram STFTSpectrogram ActivityRegularization
    Functional Sequential Model TFOpLambda SlicingOpLambda TFSMLayer TorchModuleWrapper JaxLayer
    FlaxLayer InputSpec TensorShape Layer
    Zeros Ones Constant RandomNormal RandomUniform TruncatedNormal VarianceScaling Orthogonal
    GlorotNormal GlorotUniform HeNormal HeUniform LecunNormal LecunUniform IdentityInitializer
    OrthogonalInitializer STFTInitializer zeros ones constant glorot_uniform glorot_normal
    he_normal he_uniform lecun_normal lecun_uniform random_normal random_uniform
    truncated_normal orthogonal identity variance_scaling
    L1 L2 L1L2 OrthogonalRegularizer l1 l2 l1_l2 MaxNorm MinMaxNorm NonNeg UnitNorm
    RadialConstraint max_norm min_max_norm non_neg unit_norm
    SGD Adam AdamW Adamax Adadelta Adagrad Adafactor Nadam RMSprop Ftrl Lion Lamb Muon
    LossScaleOptimizer LossScaleOptimizerV3 ExponentialDecay PiecewiseConstantDecay
    PolynomialDecay InverseTimeDecay CosineDecay CosineDecayRestarts
    MeanSquaredError MeanAbsoluteError MeanAbsolutePercentageError MeanSquaredLogarithmicError
    CosineSimilarity Huber LogCosh BinaryCrossentropy BinaryFocalCrossentropy
    CategoricalCrossentropy CategoricalFocalCrossentropy SparseCategoricalCrossentropy
    KLDivergence Poisson Hinge SquaredHinge CategoricalHinge CTC Dice Tversky Circle
    LossFunctionWrapper Accuracy BinaryAccuracy CategoricalAccuracy SparseCategoricalAccuracy
    TopKCategoricalAccuracy SparseTopKCategoricalAccuracy AUC Precision Recall PrecisionAtRecall
    RecallAtPrecision SensitivityAtSpecificity SpecificityAtSensitivity TruePositives
    TrueNegatives FalsePositives FalseNegatives Mean Sum MeanMetricWrapper MeanIoU IoU BinaryIoU
    OneHotIoU OneHotMeanIoU RootMeanSquaredError LogCoshError R2Score F1Score FBetaScore
    MeanTensor ConcordanceCorrelation PearsonCorrelation
    DTypePolicy Policy FloatDTypePolicy QuantizedDTypePolicy QuantizedFloat8DTypePolicy
    DTypePolicyMap GPTQDTypePolicy function
    """.split()  # noqa: SIM905 - a word list reads better than 300 quoted strings
)
"""Class names Keras resolves without custom code when a config has no ``module`` (Keras 2)."""

LAMBDA_CLASSES = frozenset({"Lambda"})
LOOKUP_CLASSES = frozenset({"StringLookup", "IntegerLookup", "TextVectorization", "IndexLookup"})
PATH_KEYS = frozenset(
    {
        "filepath", "file_path", "path", "fname", "origin", "url", "cache_dir", "cache_subdir",
        "handle", "vocabulary_path", "vocab_file", "vocabulary_file", "merges_file",
        "spm_model_file", "model_path", "tokenizer_file", "proto", "dump_root", "logdir",
    }
)  # fmt: skip
"""Config keys whose string value the loader may open or fetch."""
MAX_CONFIG_DEPTH = 512


# --------------------------------------------------------------------------------------------
# Marshal summary: read names and strings out of a code object without unmarshalling it.
# --------------------------------------------------------------------------------------------


class _MarshalError(Exception):
    """The bytes are not a marshal stream this walker understands."""


@dataclass(slots=True)
class MarshalSummary:
    """What a marshalled code object names: imports/attributes, string constants, code names."""

    names: list[str]
    strings: list[str]
    parsed: bool
    """False when the bytes did not parse and ``strings`` are printable runs instead."""

    def describe(self, limit: int = 12) -> str:
        """One short line for evidence."""
        parts: list[str] = []
        if self.names:
            parts.append("names: " + ", ".join(_dedupe(self.names)[:limit]))
        if self.strings:
            label = "strings" if self.parsed else "printable"
            parts.append(f"{label}: " + ", ".join(repr(s) for s in _dedupe(self.strings)[:limit]))
        return "; ".join(parts) or "no names or strings"


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


class _MarshalWalker:
    """Bounded reader of the marshal format (versions 2-5, Python 3.7-3.14 code layouts)."""

    def __init__(self, data: bytes, max_items: int = 200_000, max_depth: int = 64) -> None:
        self.data = data
        self.pos = 0
        self.refs: list[object] = []
        self.names: list[str] = []
        self.strings: list[str] = []
        self.items = 0
        self.max_items = max_items
        self.max_depth = max_depth

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _MarshalError("truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def i32(self) -> int:
        value: int = struct.unpack("<i", self.take(4))[0]
        return value

    def obj(self, depth: int = 0) -> object:
        if depth > self.max_depth:
            raise _MarshalError("nested too deeply")
        self.items += 1
        if self.items > self.max_items:
            raise _MarshalError("too many objects")
        code = self.byte()
        flag, t = code & 0x80, chr(code & 0x7F)
        slot = -1
        if flag:
            slot = len(self.refs)
            self.refs.append(None)
        value = self._value(t, depth)
        if slot >= 0:
            self.refs[slot] = value
        return value

    def _value(self, t: str, depth: int) -> object:
        if t in "0NFTS.":
            return _NULL if t == "0" else None
        if t == "i":
            return self.i32()
        if t == "I":
            self.take(8)
            return 0
        if t == "g":
            self.take(8)
            return 0.0
        if t == "y":
            self.take(16)
            return 0j
        if t == "f":
            self.take(self.byte())
            return 0.0
        if t == "x":
            self.take(self.byte())
            self.take(self.byte())
            return 0j
        if t == "l":
            self.take(abs(self.i32()) * 2)
            return 0
        if t == "s":
            return self.take(self.i32())
        if t in "tuaA":
            return self.take(self.i32()).decode("utf-8", "replace")
        if t in "zZ":
            return self.take(self.byte()).decode("latin-1")
        if t in "([<>":
            return tuple(self.obj(depth + 1) for _ in range(self._count(self.i32())))
        if t == ")":
            return tuple(self.obj(depth + 1) for _ in range(self.byte()))
        if t == "{":
            while self.obj(depth + 1) is not _NULL:
                self.obj(depth + 1)
            return None
        if t == ":":
            return tuple(self.obj(depth + 1) for _ in range(3))
        if t == "r":
            index = self.i32()
            if not 0 <= index < len(self.refs):
                raise _MarshalError("bad reference")
            return self.refs[index]
        if t == "c":
            return self._code(depth)
        raise _MarshalError(f"unknown type code {t!r}")

    def _count(self, n: int) -> int:
        if n < 0 or n > len(self.data) - self.pos:
            raise _MarshalError("bad length")
        return n

    def _code(self, depth: int) -> object:
        # The header has 6 int32s in 3.8-3.10 and 5 before and after; the bytecode that follows
        # is always a bytes object. Try each layout and keep the one that parses.
        start = (self.pos, len(self.refs), len(self.names), len(self.strings), self.items)
        for n_ints in (5, 6):
            try:
                return self._code_layout(n_ints, depth)
            except _MarshalError:
                self.pos, nrefs, nnames, nstrings, self.items = start
                del self.refs[nrefs:], self.names[nnames:], self.strings[nstrings:]
        raise _MarshalError("unrecognised code object layout")

    def _code_layout(self, n_ints: int, depth: int) -> object:
        for _ in range(n_ints):
            self.i32()
        if not isinstance(self.obj(depth + 1), bytes):
            raise _MarshalError("code is not bytes")
        consts = self.obj(depth + 1)
        names = self.obj(depth + 1)
        if not isinstance(consts, tuple) or not isinstance(names, tuple):
            raise _MarshalError("consts/names are not tuples")
        if not all(isinstance(n, str) for n in names):
            raise _MarshalError("names are not strings")
        first = self.obj(depth + 1)
        second = self.obj(depth + 1)
        if n_ints == 5 and isinstance(second, bytes):
            # 3.11+: localsplusnames, localspluskinds, filename, name, qualname, line, 2 tables.
            tail_objects, trailing = 3, 2
        else:
            # 3.7-3.10: varnames, freevars, cellvars, filename, name, line, lnotab.
            if not isinstance(first, tuple) or not isinstance(second, tuple):
                raise _MarshalError("variable names are not tuples")
            tail_objects, trailing = 3, 1
        tail = [self.obj(depth + 1) for _ in range(tail_objects)]
        self.i32()
        for _ in range(trailing):
            if not isinstance(self.obj(depth + 1), bytes):
                raise _MarshalError("line table is not bytes")
        if not all(isinstance(x, str) for x in tail[-2:]):
            raise _MarshalError("code names are not strings")
        self.names.extend(str(n) for n in names)
        self.strings.extend(c for c in consts if isinstance(c, str))
        return _CODE


_NULL = object()
_CODE = object()
PRINTABLE_RUN = re.compile(rb"[\x20-\x7e]{4,}")


def summarize_marshal(data: bytes) -> MarshalSummary:
    """Names and string constants of a marshalled code object; printable runs if it won't parse.

    NOTE: never ``marshal.loads``: unmarshalling attacker bytes can crash the interpreter, and
    the code object is the payload.
    """
    walker = _MarshalWalker(data)
    try:
        if _CODE is walker.obj():
            return MarshalSummary(walker.names, walker.strings, parsed=True)
    except _MarshalError:
        pass
    runs = [m.decode("ascii") for m in PRINTABLE_RUN.findall(data[: 1 << 20])]
    return MarshalSummary([], runs[:40], parsed=False)


def _decode_b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii", "ignore"), validate=False)
    except (binascii.Error, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# Config analysis, shared with the SavedModel scanner.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigHit:
    """One problem in a Keras config, before it is tied to an artifact."""

    rule: Rule
    message: str
    evidence: str
    severity: Severity | None = None
    confidence: Confidence = Confidence.HIGH
    payload: bytes | None = None
    """Embedded bytes (a pickle) the caller should hand back to the engine to scan."""
    payload_name: str = ""


def parse_json_config(data: bytes, what: str, limits: Limits) -> object:
    """Parse a config's JSON bytes, turning every failure into ``ArtifactError``."""
    if len(data) > limits.max_header_bytes:
        raise LimitExceeded(f"{what}: {len(data)} bytes over the header limit")
    try:
        return json.loads(data.decode("utf-8-sig"))
    except RecursionError as exc:
        raise LimitExceeded(f"{what}: JSON nested too deeply") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError(f"{what}: invalid JSON ({exc})") from exc


MAX_CLASS_FACTS = 64
"""Most distinct layer class names reported as a fact."""


def emit_config_facts(artifact: Artifact, ctx: ScanContext, config: object) -> None:
    """Facts from a model config: format, model class, layer classes, Keras version/backend."""
    ctx.emit(artifact.fact("format", "keras"))
    if not isinstance(config, dict):
        return
    top = config.get("class_name")
    if isinstance(top, str):
        ctx.emit(artifact.fact("model.class", top))
    for key in ("keras_version", "backend"):
        value = config.get(key)
        if isinstance(value, str):
            ctx.emit(artifact.fact(f"keras.{key}", value))
    classes: set[str] = set()
    stack: list[tuple[object, int]] = [(config, 0)]
    walked = 0
    while stack and walked < 100_000:
        node, depth = stack.pop()
        walked += 1
        if depth > MAX_CONFIG_DEPTH:
            continue
        if isinstance(node, dict):
            cls = node.get("class_name")
            if isinstance(cls, str) and len(classes) < MAX_CLASS_FACTS:
                classes.add(cls)
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))
    if classes:
        ctx.emit(artifact.fact("keras.classes", tuple(sorted(classes))))


def analyze_config(root: object, where: str) -> Iterator[ConfigHit]:
    """Walk a parsed Keras config (any format generation) and yield every problem found.

    ``where`` names the config's origin (``config.json``, ``model_config``...) in messages.
    """
    seen: set[tuple[str, str, str]] = set()
    stack: list[tuple[object, str, str, int]] = [(root, "", "", 0)]
    while stack:
        node, path, layer, depth = stack.pop()
        if depth > MAX_CONFIG_DEPTH:
            raise LimitExceeded(f"{where}: config nested deeper than {MAX_CONFIG_DEPTH} levels")
        if isinstance(node, dict):
            name = node.get("name")
            cfg = node.get("config")
            if isinstance(cfg, dict) and isinstance(cfg.get("name"), str):
                name = cfg["name"]
            here = name if isinstance(name, str) and "class_name" in node else layer
            for hit in _check_object(node, path or "<root>", here, where):
                key = (hit.rule.id, hit.message, hit.evidence)
                if key not in seen:
                    seen.add(key)
                    yield hit
            for k, v in node.items():
                if isinstance(v, dict | list):
                    stack.append((v, f"{path}.{k}" if path else str(k), here, depth + 1))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                if isinstance(v, dict | list):
                    stack.append((v, f"{path}[{i}]", layer, depth + 1))


def _check_object(node: dict[str, Any], path: str, layer: str, where: str) -> Iterator[ConfigHit]:
    cls = node.get("class_name")
    module = node.get("module")
    registered = node.get("registered_name")
    cfg = node.get("config")
    label = f"layer '{layer}'" if layer else path
    yield from _check_path_keys(node, path, where)
    if not isinstance(cls, str):
        return
    if cls == "__lambda__":
        yield from _lambda_hit(cfg.get("code") if isinstance(cfg, dict) else None, label, where)
        return
    if cls in LAMBDA_CLASSES and isinstance(cfg, dict):
        yield from _lambda_layer(cfg, label, where)
    if cls == "TorchModuleWrapper" and isinstance(cfg, dict):
        yield from _torch_wrapper(cfg, label, where)
    if cls == "TFSMLayer":
        target = cfg.get("filepath") if isinstance(cfg, dict) else None
        yield ConfigHit(
            KER005,
            f"{where}: TFSMLayer {label} loads and runs an external SavedModel",
            f"TFSMLayer filepath={target!r}",
        )
    if cls in LOOKUP_CLASSES and isinstance(cfg, dict):
        vocab = cfg.get("vocabulary")
        if isinstance(vocab, str) and vocab:
            outside = is_outside_path(vocab) or is_url(vocab)
            yield ConfigHit(
                KER005,
                f"{where}: {cls} {label} reads its vocabulary from a file path"
                + (" outside the model" if outside else ""),
                f"{cls} vocabulary={vocab!r}",
                severity=None if outside else Severity.MEDIUM,
            )
    yield from _check_reference(cls, module, registered, cfg, "config" in node, label, where)


def _check_reference(
    cls: str,
    module: object,
    registered: object,
    cfg: object,
    has_config: bool,
    label: str,
    where: str,
) -> Iterator[ConfigHit]:
    custom = False
    for reg in (registered, cls):
        if isinstance(reg, str) and ">" in reg:
            package, _, short = reg.partition(">")
            # NOTE: tf.keras 2.11+ saves its own optimizers as "Custom>Adam"; not custom code.
            if package not in TRUSTED_REGISTRY_PACKAGES and short not in BUILTIN_CLASS_NAMES:
                custom = True
                yield ConfigHit(
                    KER004,
                    f"{where}: {label} uses custom object {reg!r}",
                    f"registered_name={reg!r}",
                    severity=Severity.MEDIUM,
                )
                break
    target = cls
    is_function = cls == "function"
    if is_function and isinstance(cfg, str):
        target = cfg
    if isinstance(module, str) and module:
        qual = f"{module}.{target}"
        parts = module.split(".")
        evidence = f"module={module!r} class_name={cls!r}" + (
            f" config={cfg!r}" if is_function else ""
        )
        if parts[0] in KERAS_NAMESPACES:
            if target in KERAS_DANGEROUS_NAMES or DANGEROUS_MODULE_PARTS.intersection(parts[1:]):
                yield ConfigHit(
                    KER002,
                    f"{where}: {label} calls {qual}, which reaches files, the network or "
                    "turns safe_mode off",
                    evidence,
                )
            return
        if parts[0] in DANGEROUS_MODULES or target in DANGEROUS_NAMES:
            yield ConfigHit(KER002, f"{where}: {label} imports {qual}", evidence)
        elif not custom:
            yield ConfigHit(
                KER003,
                f"{where}: {label} imports {qual} from outside Keras",
                evidence,
                severity=Severity.HIGH if is_function else None,
                confidence=Confidence.MEDIUM,
            )
        return
    if is_function and isinstance(cfg, str) and cfg in DANGEROUS_NAMES:
        yield ConfigHit(KER002, f"{where}: {label} names function {cfg!r}", f"function={cfg!r}")
    elif (
        not custom
        and ">" not in cls
        and not (cls.startswith("__") and cls.endswith("__"))
        and cls not in BUILTIN_CLASS_NAMES
        and has_config
    ):
        yield ConfigHit(
            KER004,
            f"{where}: {label} uses class {cls!r}, which Keras does not ship",
            f"class_name={cls!r}",
            confidence=Confidence.MEDIUM,
        )


def _check_path_keys(node: dict[str, Any], path: str, where: str) -> Iterator[ConfigHit]:
    for key in PATH_KEYS.intersection(node):
        value = node[key]
        if isinstance(value, str) and (is_url(value) or is_outside_path(value)):
            yield ConfigHit(
                KER005,
                f"{where}: {path}.{key} points outside the model",
                f"{key}={value!r}",
            )


def _lambda_layer(cfg: dict[str, Any], label: str, where: str) -> Iterator[ConfigHit]:
    fn = cfg.get("function")
    kind = cfg.get("function_type")
    if isinstance(fn, list | tuple) and fn and isinstance(fn[0], str):
        # Keras 2: [base64 marshal, defaults, closure].
        yield from _lambda_hit(fn[0], label, where)
    elif isinstance(fn, str) and kind == "lambda":
        yield from _lambda_hit(fn, label, where)
    elif isinstance(fn, str):
        module = cfg.get("module")
        ref = f"{module}.{fn}" if isinstance(module, str) and module else fn
        top = ref.split(".", 1)[0]
        danger = top in DANGEROUS_MODULES or fn in DANGEROUS_NAMES
        yield ConfigHit(
            KER002 if danger else KER001,
            f"{where}: Lambda {label} calls function {ref}",
            f"Lambda function={ref!r}",
            severity=None if danger else Severity.HIGH,
            confidence=Confidence.HIGH if danger else Confidence.MEDIUM,
        )
    elif isinstance(fn, dict) and fn.get("class_name") != "__lambda__":
        ref = f"{fn.get('module', '')}.{fn.get('config', fn.get('class_name', ''))}"
        yield ConfigHit(
            KER001,
            f"{where}: Lambda {label} calls function {ref.strip('.')}",
            f"Lambda function={ref.strip('.')!r}",
            severity=Severity.HIGH,
            confidence=Confidence.MEDIUM,
        )
    shape = cfg.get("output_shape")
    if cfg.get("output_shape_type") == "lambda":
        if isinstance(shape, list | tuple) and shape and isinstance(shape[0], str):
            yield from _lambda_hit(shape[0], label + " output_shape", where)
        elif isinstance(shape, str):
            yield from _lambda_hit(shape, label + " output_shape", where)


def _lambda_hit(code: object, label: str, where: str) -> Iterator[ConfigHit]:
    raw = _decode_b64(code) if isinstance(code, str) else None
    if not raw:
        yield ConfigHit(
            KER001,
            f"{where}: Lambda {label} carries a function that could not be decoded",
            f"code={str(code)[:80]!r}",
        )
        return
    summary = summarize_marshal(raw)
    yield ConfigHit(
        KER001,
        f"{where}: Lambda {label} embeds {len(raw)} bytes of Python bytecode",
        summary.describe(),
    )


def _torch_wrapper(cfg: dict[str, Any], label: str, where: str) -> Iterator[ConfigHit]:
    blob = cfg.get("module")
    raw = _decode_b64(blob) if isinstance(blob, str) else None
    yield ConfigHit(
        KER008,
        f"{where}: TorchModuleWrapper {label} embeds a pickled PyTorch module",
        f"TorchModuleWrapper module=<{len(raw) if raw else 0} bytes>",
        payload=raw or None,
        payload_name=f"{where}#{label}.module",
    )


# --------------------------------------------------------------------------------------------
# The scanner.
# --------------------------------------------------------------------------------------------


def hits_to_findings(
    artifact: Artifact, ctx: ScanContext, hits: Iterator[ConfigHit]
) -> Iterator[Finding]:
    """Turn config hits into findings, dispatching embedded payloads to the engine."""
    for hit in hits:
        yield artifact.finding(
            hit.rule,
            hit.message,
            evidence=hit.evidence,
            severity=hit.severity,
            confidence=hit.confidence,
        )
        if hit.payload:
            child = artifact.child(
                hit.payload_name, ArtifactKind.UNKNOWN, len(hit.payload), io.BytesIO(hit.payload)
            )
            yield from ctx.dispatch(child)
