"""``supplychain serve``: the HTTP gate a registry and a cluster call (issue #15).

Nothing here is imported by ``supplychain scan``: FastAPI and uvicorn load only when the server
starts (``supplychain.server.cli``). Modules:

- ``config``: ``ServerConfig``, the frozen start-up options;
- ``app``: ``create_app(config) -> FastAPI`` with ``/healthz``, ``/metrics``, ``/v1/scan``,
  ``/v1/admission`` and (when present) the Harbor adapter router;
- ``auth``: the bearer-token dependency; ``jobs``: the bounded job queue;
- ``verdicts``: verdicts recorded by OCI manifest digest (Harbor scans write, admission reads);
- ``paths``: request paths confined to ``--root``; ``metrics``: Prometheus text by hand.
"""
