"""Scanner registry: an explicit tuple, no import side effects, plugins only on request.

Adding a format is one module in this package plus one line in ``BUILTIN_SPECS``. Each entry
names the module and class and repeats the content kinds the scanner handles, so the engine
imports a scanner module only when a file of one of its kinds turns up: scanning one small
safetensors file never pays for the pickle VM, the dataset checks or the code analyser
(``tests/test_engine.py`` checks each spec's kinds against its class).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scanners.base import Artifact, ScanContext, Scanner
from supplychain.core.model import ArtifactKind as K

if TYPE_CHECKING:
    BUILTIN_SCANNERS: tuple[type[Scanner], ...]


@dataclass(frozen=True, slots=True)
class ScannerSpec:
    """One registered scanner, loadable on demand."""

    module: str
    attr: str
    kinds: frozenset[K]
    """Must equal the class's ``kinds`` (checked by a test)."""

    def load(self) -> type[Scanner]:
        """Import the scanner's module and return its class."""
        cls: type[Scanner] = getattr(importlib.import_module(self.module), self.attr)
        return cls


def _spec(module: str, attr: str, *kinds: K) -> ScannerSpec:
    return ScannerSpec(f"scanners.{module}", attr, frozenset(kinds))


BUILTIN_SPECS: tuple[ScannerSpec, ...] = (
    _spec("pickle_scan", "PickleScanner", K.PICKLE),
    _spec("torch_scan", "TorchScanner", K.TORCH_LEGACY, K.TORCH_TAR, K.TORCH_ZIP),
    _spec("numpy_scan", "NumpyScanner", K.NUMPY_NPY, K.NUMPY_NPZ),
    _spec(
        "archive_scan",
        "ArchiveScanner",
        *(K.BZIP2, K.GZIP, K.LZ4, K.SEVEN_ZIP, K.TAR, K.XZ, K.ZIP, K.ZLIB),
    ),
    _spec("safetensors_scan", "SafetensorsScanner", K.SAFETENSORS),
    _spec("gguf_scan", "GgufScanner", K.GGUF),
    _spec("template_scan", "TemplateScanner", K.CHAT_TEMPLATE, K.MODEL_CONFIG, K.YAML_CONFIG),
    _spec("code_scan", "CodeScanner", K.PYTHON_SOURCE),
    _spec("config_scan", "ConfigScanner", K.MODEL_CONFIG, K.YAML_CONFIG),
    _spec("requirements_scan", "RequirementsScanner", K.REQUIREMENTS),
    _spec("modelcard_scan", "ModelCardScanner", K.MODEL_CARD),
    _spec(
        "secrets_scan",
        "SecretsScanner",
        *(K.CHAT_TEMPLATE, K.MODEL_CARD, K.MODEL_CONFIG, K.PYTHON_SOURCE, K.TEXT, K.YAML_CONFIG),
        K.REQUIREMENTS,  # index URLs carry tokens (user:token@host)
    ),
    _spec("keras_scan", "KerasScanner", K.HDF5, K.KERAS_ZIP),
    _spec("tf_scan", "SavedModelScanner", K.TF_SAVEDMODEL),
    _spec("onnx_scan", "OnnxScanner", K.ONNX),
    _spec(
        "dataset.runner",
        "DatasetScanner",
        *(K.DATASET_ARROW, K.DATASET_CSV, K.DATASET_JSONL, K.DATASET_PARQUET),
    ),
    _spec(
        "dataformats",
        "DataFormatScanner",
        *(
            K.CATBOOST,
            K.COREML,
            K.FASTTEXT,
            K.FLAX_MSGPACK,
            K.HF_DATASET_META,
            K.MSGPACK,
            K.NUMPY_RAW,
        ),
        *(K.ONNX_EXTERNAL_DATA, K.SENTENCEPIECE, K.TFLITE, K.TORCH_EXPORT, K.WORD2VEC, K.XGBOOST),
    ),
    _spec(
        "placeholder_scan", "PlaceholderScanner", K.EMPTY, K.LFS_POINTER, K.MEDIA, K.PICKLE, K.TEXT
    ),
)
"""Every built-in scanner, in dispatch order."""


def __getattr__(name: str) -> object:
    """``BUILTIN_SCANNERS``: every built-in class, imported on first use (then cached)."""
    if name == "BUILTIN_SCANNERS":
        loaded = tuple(spec.load() for spec in BUILTIN_SPECS)
        globals()["BUILTIN_SCANNERS"] = loaded
        return loaded
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def scanners_for(kind: object) -> tuple[type[Scanner], ...]:
    """Registered scanner classes that handle ``kind``."""
    return tuple(spec.load() for spec in BUILTIN_SPECS if kind in spec.kinds)


__all__ = [
    "BUILTIN_SCANNERS",
    "BUILTIN_SPECS",
    "Artifact",
    "ScanContext",
    "Scanner",
    "ScannerSpec",
    "scanners_for",
]
