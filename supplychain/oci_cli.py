"""``supplychain scan oci://REGISTRY/REPO[:TAG][@DIGEST]``: pull an OCI artifact and scan it.

The same client as the Harbor adapter (``supplychain.oci``: digests verified while streaming,
caps, no credentials to other hosts, plain http only to loopback or listed hosts), the same
policy and output flags as any scan. Credentials come from the environment, never from a flag
(they would land in shell history and process lists):

- ``SUPPLYCHAIN_OCI_USERNAME`` / ``SUPPLYCHAIN_OCI_PASSWORD`` (Basic, and the token service), or
  ``SUPPLYCHAIN_OCI_TOKEN`` (a registry bearer token);
- ``SUPPLYCHAIN_OCI_INSECURE_HOSTS`` (comma-separated hosts allowed over plain http) and
  ``SUPPLYCHAIN_OCI_CA_BUNDLE`` (a PEM file of CAs), as for the server.

A pull that fails is an operational error (exit 2, with the reason), never a pass.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from supplychain.core.errors import ConfigError

if TYPE_CHECKING:
    from supplychain.core.model import Report
    from supplychain.oci import Credentials

SCHEME = "oci://"


def wants_oci(args: argparse.Namespace) -> bool:
    """Whether a ``scan`` target is an ``oci://`` reference."""
    return any(str(p).startswith(SCHEME) for p in args.paths)


def _credentials() -> Credentials:
    from supplychain.oci import Credentials

    token = os.environ.get("SUPPLYCHAIN_OCI_TOKEN")
    user = os.environ.get("SUPPLYCHAIN_OCI_USERNAME")
    if token and user:
        raise ConfigError("set SUPPLYCHAIN_OCI_TOKEN or SUPPLYCHAIN_OCI_USERNAME, not both")
    if token:
        return Credentials(token=token)
    if user:
        return Credentials(username=user, password=os.environ.get("SUPPLYCHAIN_OCI_PASSWORD", ""))
    return Credentials()


def scan_oci(args: argparse.Namespace) -> int:
    """Pull the one ``oci://`` target into a temp dir, scan it with the policy, emit the report."""
    from supplychain import service
    from supplychain.cli import _check_output, _emit, _load_policy
    from supplychain.oci import Reference, scan_artifact

    paths = [str(p) for p in args.paths]
    if len(paths) != 1:
        raise ConfigError("an oci:// target is scanned on its own: give exactly one")
    for flag in ("hf", "lock", "keep"):
        if getattr(args, flag, None):
            raise ConfigError(f"--{flag} does not apply to an oci:// target")
    ref = Reference.parse(paths[0])
    insecure = frozenset(
        h.strip() for h in os.environ.get("SUPPLYCHAIN_OCI_INSECURE_HOSTS", "").split(",") if h
    )
    import ssl  # NOTE: here, not at module level: a plain scan's start-up must not load ssl

    bundle = os.environ.get("SUPPLYCHAIN_OCI_CA_BUNDLE")
    verify: bool | ssl.SSLContext = ssl.create_default_context(cafile=bundle) if bundle else True
    policy = _load_policy(args)
    settings = service.settings_from_policy(policy)
    _check_output(args.output)
    credentials = _credentials()

    def scan(root: Path) -> Report:
        return service.run([root], settings, policy, jobs=args.jobs)

    result = scan_artifact(
        ref.registry_url(insecure),
        ref.repository,
        ref.reference,
        credentials,
        insecure_hosts=insecure,
        verify=verify,
        scan_fn=scan,
    )
    return _emit(result.report, args)
