"""The shipped Dockerfile and Kubernetes manifests agree with the server they run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from supplychain.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent.parent
K8S = ROOT / "deploy" / "kubernetes"


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def test_webhook_fails_closed_and_targets_the_admission_route() -> None:
    (config,) = _docs("webhook.yaml")
    assert config["kind"] == "ValidatingWebhookConfiguration"
    (hook,) = config["webhooks"]
    assert hook["failurePolicy"] == "Fail"
    assert hook["sideEffects"] == "None"
    assert hook["admissionReviewVersions"] == ["v1"]
    assert 2 < hook["timeoutSeconds"] <= 30  # above the default --admission-budget
    assert hook["clientConfig"]["service"]["path"] == "/v1/admission"
    assert hook["namespaceSelector"]["matchLabels"]
    assert {"pods"} == {r for rule in hook["rules"] for r in rule["resources"]}


def test_deployment_args_are_accepted_by_serve() -> None:
    deployment, service, claim = _docs("deployment.yaml")
    assert claim["kind"] == "PersistentVolumeClaim"
    assert deployment["spec"]["replicas"] == 1  # verdicts are local SQLite files
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    args = build_parser().parse_args(["serve", *container["args"]])
    assert args.handler.__name__ == "cmd_serve"
    assert args.token_file is not None and args.tls_cert is not None and not args.insecure_no_auth
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    hook = _docs("webhook.yaml")[0]["webhooks"][0]["clientConfig"]["service"]
    assert (hook["name"], hook["namespace"]) == (
        service["metadata"]["name"],
        service["metadata"]["namespace"],
    )


def test_dockerfile_runs_serve_as_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "USER 10001" in text
    assert 'ENTRYPOINT ["supplychain", "serve"]' in text
    assert '".[server]"' in text
    cmd = text.split("CMD ", 1)[1].split("\n\n")[0].split("HEALTHCHECK")[0]
    parsed = yaml.safe_load(cmd.replace("\\\n", " "))
    args = build_parser().parse_args(["serve", *parsed])
    assert args.root == Path("/models")
