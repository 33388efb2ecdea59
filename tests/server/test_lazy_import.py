"""``supplychain scan`` never imports the web stack (issue #15: start-up of a one-file scan)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.server.conftest import SAMPLES

WEB = ("fastapi", "starlette", "uvicorn", "pydantic", "multipart", "supplychain.server.app")


def test_scan_and_parser_do_not_import_the_web_stack(tmp_path: Path) -> None:
    code = (
        "import sys, json\n"
        "from supplychain.cli import main\n"
        f"rc = main(['scan', '-q', '-f', 'json', '-o', {str(tmp_path / 'r.json')!r}, "
        f"{str(SAMPLES / 'benign' / 'model.safetensors')!r}])\n"
        f"print(json.dumps([rc, sorted(m for m in sys.modules if m.split('.')[0] in {WEB!r} "
        "or m == 'supplychain.server.app')]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    rc, loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert rc == 0
    assert loaded == []


def test_serve_is_registered() -> None:
    from supplychain.cli import build_parser

    args = build_parser().parse_args(["serve", "--root", "."])
    assert args.handler.__name__ == "cmd_serve"
    assert (args.host, args.port, args.admission_budget) == ("127.0.0.1", 8080, 2.0)
