"""Scanner registry: an explicit tuple, no import side effects, plugins only on request.

Adding a format is one module in this package plus one line in ``BUILTIN_SCANNERS``.
"""

from __future__ import annotations

from scanners.archive_scan import ArchiveScanner
from scanners.base import Artifact, ScanContext, Scanner
from scanners.code_scan import CodeScanner
from scanners.config_scan import ConfigScanner
from scanners.dataformats import DataFormatScanner
from scanners.dataset_scan import DatasetScanner
from scanners.gguf_scan import GgufScanner
from scanners.keras_scan import KerasScanner
from scanners.numpy_scan import NumpyScanner
from scanners.onnx_scan import OnnxScanner
from scanners.pickle_scan import PickleScanner
from scanners.placeholder_scan import PlaceholderScanner
from scanners.safetensors_scan import SafetensorsScanner
from scanners.template_scan import TemplateScanner
from scanners.tf_scan import SavedModelScanner
from scanners.torch_scan import TorchScanner

BUILTIN_SCANNERS: tuple[type[Scanner], ...] = (
    PickleScanner,
    TorchScanner,
    NumpyScanner,
    ArchiveScanner,
    SafetensorsScanner,
    GgufScanner,
    TemplateScanner,
    CodeScanner,
    ConfigScanner,
    KerasScanner,
    SavedModelScanner,
    OnnxScanner,
    DatasetScanner,
    DataFormatScanner,
    PlaceholderScanner,
)


def scanners_for(kind: object) -> tuple[type[Scanner], ...]:
    """Registered scanner classes that handle ``kind``."""
    return tuple(s for s in BUILTIN_SCANNERS if kind in s.kinds)


__all__ = ["BUILTIN_SCANNERS", "Artifact", "ScanContext", "Scanner", "scanners_for"]
