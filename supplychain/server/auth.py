"""Bearer-token check for every route except ``/healthz``.

The token is compared in constant time (``hmac.compare_digest`` over bytes) and never appears in
a log line, an error message or the config's ``repr``. ``HTTPBearer`` only publishes the scheme
in the OpenAPI document (so property tests and clients know it); the decision is ours.
"""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from supplychain.server.state import get_state

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="The token from SUPPLYCHAIN_SERVER_TOKEN or --token-file.",
)


def token_matches(expected: str, presented: str | None) -> bool:
    """Constant-time equality of the presented token and the expected one."""
    if presented is None:
        return False
    # NOTE: compare_digest on str refuses non-ASCII; bytes never raise and stay constant-time.
    return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"), expected.encode())


async def require_token(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Security(bearer),  # noqa: B008
) -> None:
    """FastAPI dependency: 401 unless the request carries the server's token."""
    config = get_state(request).config
    if config.insecure_no_auth:
        return
    assert config.token is not None
    presented = credentials.credentials if credentials is not None else None
    if not token_matches(config.token, presented):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong bearer token",
            headers={"WWW-Authenticate": 'Bearer realm="supplychain"'},
        )
