# supplychain serve: the scan API, the Kubernetes admission webhook and the Harbor adapter.
# Slim, non-root, no compiler in the final image. Build:  docker build -t supplychain .
# Run:  docker run -e SUPPLYCHAIN_SERVER_TOKEN=... -v /models:/models:ro -p 8080:8080 supplychain
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md LICENSE ./
COPY supplychain ./supplychain
COPY scanners ./scanners
COPY sbom ./sbom
RUN python -m venv /opt/supplychain \
 && /opt/supplychain/bin/pip install --no-cache-dir ".[server]"

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin supplychain \
 && mkdir -p /models /var/lib/supplychain \
 && chown supplychain /var/lib/supplychain
COPY --from=build /opt/supplychain /opt/supplychain
ENV PATH=/opt/supplychain/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080
# The token comes from SUPPLYCHAIN_SERVER_TOKEN or --token-file (a mounted Secret); without one
# the server refuses to start. Models are read from /models (mount read-only).
ENTRYPOINT ["supplychain", "serve"]
CMD ["--host", "0.0.0.0", "--port", "8080", "--root", "/models", \
     "--cache", "/var/lib/supplychain/cache.sqlite", \
     "--verdicts", "/var/lib/supplychain/verdicts.sqlite"]
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
