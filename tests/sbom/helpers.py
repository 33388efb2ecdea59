"""A model directory built in code: config, card, safetensors, a malicious pickle, requirements."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

SERIAL = uuid.UUID("3e671687-395b-41f5-a30f-a58921a69b79")
STAMP = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)

CARD = """---
license: apache-2.0
base_model: google-bert/bert-base-uncased
base_model_relation: finetune
datasets:
- stanfordnlp/imdb
language: [en]
pipeline_tag: text-classification
library_name: transformers
model-index:
- name: tiny-imdb
  results:
  - task: {type: text-classification}
    dataset: {name: IMDB, type: stanfordnlp/imdb}
    metrics:
    - {type: accuracy, value: 0.931, name: Accuracy}
    - {type: f1, value: 0.929}
---
# tiny-imdb

A sentiment classifier fine-tuned from BERT.
"""

CONFIG = {
    "architectures": ["BertForSequenceClassification"],
    "model_type": "bert",
    "id2label": {"0": "NEGATIVE", "1": "POSITIVE"},
    "problem_type": "single_label_classification",
    "torch_dtype": "float32",
    "transformers_version": "4.44.0",
}

EVIL_PICKLE = b"cos\nsystem\n(S'echo supplychain-sample'\ntR."
"""Protocol-0 pickle calling os.system (never loaded; the most it would run is an echo)."""


def safetensors_bytes() -> bytes:
    import numpy as np
    from safetensors.numpy import save

    data: bytes = save(
        {"classifier.weight": np.arange(8, dtype=np.float32).reshape(2, 4)},
        metadata={"format": "pt"},
    )
    return data


def model_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text(CARD)
    (root / "config.json").write_text(json.dumps(CONFIG, indent=2, sort_keys=True) + "\n")
    (root / "model.safetensors").write_bytes(safetensors_bytes())
    (root / "training_args.bin").write_bytes(EVIL_PICKLE)
    (root / "requirements.txt").write_text("transformers==4.44.0\ntorch>=2.1\n")
    return root


def normalise(doc: dict[str, Any]) -> dict[str, Any]:
    """What may legitimately differ between installs: tool version, settings fingerprint."""
    text = json.dumps(doc)
    from supplychain.core import __version__

    doc = json.loads(text)
    for tool in doc["metadata"]["tools"]["components"]:
        assert tool["version"] == __version__
        tool["version"] = "<version>"
    for prop in doc["metadata"]["component"].get("properties", []):
        if prop["name"] == "supplychain:settings_fingerprint":
            assert len(prop["value"]) == 64
            prop["value"] = "<fingerprint>"
    return doc
