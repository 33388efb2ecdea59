"""``supplychain serve``: flags → ``ServerConfig`` → uvicorn. FastAPI is imported only here, late.

The token comes from ``--token-file`` (first line, stripped) or the environment variable
``SUPPLYCHAIN_SERVER_TOKEN``; without one the server refuses to start (exit 2) unless
``--insecure-no-auth`` is given. SIGTERM/SIGINT stop accepting connections, finish the requests
in flight and every accepted job, then exit 0.
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from typing import Any

from supplychain.core.errors import ConfigError

TOKEN_ENV = "SUPPLYCHAIN_SERVER_TOKEN"  # noqa: S105 (a variable name, not a secret)
GRACE_SECONDS = 60
EPILOG = f"""examples:
  {TOKEN_ENV}=$(openssl rand -hex 32) supplychain serve --root /models --cache cache.sqlite
  supplychain serve --root /models --token-file token --tls-cert tls.crt --tls-key tls.key

exit codes:
  0  stopped by SIGTERM/SIGINT after finishing every accepted job
  2  cannot start: no token, bad flag, unusable root, policy, cache or verdict store
"""


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register ``serve``."""
    from supplychain.server import config as c

    serve = sub.add_parser(
        "serve",
        help="run the HTTP gate (scan API, admission webhook)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--root", type=Path, required=True, help="paths in requests resolve here")
    serve.add_argument(
        "--cache",
        type=Path,
        help="verdict cache file (default: SUPPLYCHAIN_CACHE, else the policy's [cache] path)",
    )
    serve.add_argument("--verdicts", type=Path, help="verdicts by OCI digest (SQLite file)")
    serve.add_argument("--policy", type=Path, help="policy file (default: the default policy)")
    serve.add_argument("--token-file", type=Path, help=f"bearer token file (else ${TOKEN_ENV})")
    serve.add_argument("--insecure-no-auth", action="store_true", help="serve without a token")
    serve.add_argument(
        "--max-upload",
        type=int,
        default=c.DEFAULT_MAX_UPLOAD,
        metavar="BYTES",
        help="largest multipart upload to /v1/scan (413 over it; default 1 GiB)",
    )
    serve.add_argument(
        "--max-body",
        type=int,
        default=c.DEFAULT_MAX_BODY,
        metavar="BYTES",
        help="largest JSON body (default 4 MiB)",
    )
    serve.add_argument(
        "--admission-budget",
        type=float,
        default=c.DEFAULT_ADMISSION_BUDGET,
        metavar="SECONDS",
        help="how long an admission waits for a scan before 'not yet scanned' (default 2)",
    )
    serve.add_argument(
        "--body-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="408 when a request body stalls this long",
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        default=256,
        metavar="N",
        help="concurrent connections before uvicorn answers 503",
    )
    serve.add_argument(
        "--queue", type=int, default=c.DEFAULT_QUEUE, metavar="N",
        help="jobs waiting before 503 + Retry-After (default 64)",
    )  # fmt: skip
    serve.add_argument(
        "--workers", type=int, default=c.DEFAULT_WORKERS, metavar="N",
        help="scan worker threads (default 2)",
    )  # fmt: skip
    serve.add_argument(
        "--no-memo", action="store_true", help="re-check every admission through the queue"
    )
    serve.add_argument("--tls-cert", type=Path, help="serve HTTPS (the API server requires it)")
    serve.add_argument("--tls-key", type=Path)
    serve.set_defaults(handler=cmd_serve)


def read_token(args: argparse.Namespace) -> str | None:
    """The token from ``--token-file`` or the environment (never echoed in an error)."""
    if args.token_file is not None:
        try:
            text = args.token_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--token-file {args.token_file}: cannot read ({exc})") from None
        token = text.strip().splitlines()[0].strip() if text.strip() else ""
        if not token:
            raise ConfigError(f"--token-file {args.token_file} is empty")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    return token or None


def config_from(args: argparse.Namespace) -> Any:
    """``ServerConfig`` from parsed flags (``ConfigError`` for anything unusable)."""
    from supplychain.server.config import ServerConfig

    if not args.root.is_dir():
        raise ConfigError(f"--root {args.root} is not a directory")
    token = read_token(args)
    if token is None and not args.insecure_no_auth:
        raise ConfigError(
            f"no token: set {TOKEN_ENV} or --token-file (or start with --insecure-no-auth)"
        )
    if args.insecure_no_auth:
        token = None
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if not 0 < args.port < 65536:
        raise ConfigError("--port must be 1-65535")
    try:
        return ServerConfig(
            root=args.root.resolve(),
            token=token,
            insecure_no_auth=args.insecure_no_auth,
            cache_path=args.cache,
            verdicts_path=args.verdicts,
            policy_path=args.policy,
            max_upload=args.max_upload,
            max_body=args.max_body,
            admission_budget=args.admission_budget,
            queue_size=args.queue,
            workers=args.workers,
            memo=not getattr(args, "no_memo", False),
            body_timeout=getattr(args, "body_timeout", 30.0),
            max_connections=getattr(args, "max_connections", 256),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def cmd_serve(args: argparse.Namespace) -> int:
    """Build the app and run uvicorn until SIGTERM/SIGINT (then drain and exit 0)."""
    config = config_from(args)
    try:
        import uvicorn

        from supplychain.server import logs
        from supplychain.server.app import create_app

        logs.configure()
        app = create_app(config)
    except ImportError as exc:  # a missing extra is an operational error, never a traceback
        raise ConfigError(
            f"the server cannot start: {exc} (pip install 'supplychain[server]')"
        ) from None
    ssl: dict[str, Any] = {}
    if args.tls_cert is not None:
        ssl = {"ssl_certfile": str(args.tls_cert), "ssl_keyfile": str(args.tls_key)}
    stopped: list[int] = []
    # NOTE: uvicorn re-raises the signal that stopped it once it has drained; a handler of our
    # own turns that into a normal return, so a graceful stop exits 0 instead of dying by signal.
    previous = {
        sig: signal.signal(sig, lambda signum, _frame: stopped.append(signum))
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_config=None,
            access_log=False,
            server_header=False,
            limit_concurrency=config.max_connections,
            timeout_graceful_shutdown=GRACE_SECONDS,
            **ssl,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
