"""The requirements scanner: pip syntax, lock files, includes, typosquats, fail-closed parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanners.deps_options import DepsOptions
from scanners.requirements_scan import (
    NEAR_MISS_ALLOWED,
    POPULAR_ML_PACKAGES,
    near_miss,
)
from supplychain import service
from supplychain.core.limits import Limits
from supplychain.core.model import ArtifactKind, Report

OFFLINE = DepsOptions(online=False)


def deps(path: Path, **opts: object) -> Report:
    return service.run_deps([path], options=DepsOptions(online=False, **opts))  # type: ignore[arg-type]


def rules_at(report: Report) -> list[tuple[str, str, int | None]]:
    return sorted((f.rule, f.severity.label, f.location.offset) for f in report.findings)


def requirements(report: Report) -> list[tuple[str, ...]]:
    return sorted(
        f.value  # type: ignore[misc]
        for f in report.facts
        if f.key == "dependency.requirement"
    )


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_names_are_identified_as_requirement_files(tmp_path: Path) -> None:
    for name in (
        "requirements.txt",
        "requirements-dev.in",
        "dev-requirements.txt",
        "constraints.txt",
        "pyproject.toml",
        "pylock.toml",
        "uv.lock",
        "poetry.lock",
        "Pipfile.lock",
    ):
        write(tmp_path, name, "# nothing yet\n")
    write(tmp_path, "notes.txt", "torch==2.1.0\n")
    report = service.run_scan([tmp_path])
    kinds = {r.path: r.kind for r in report.files}
    assert kinds["notes.txt"] is not ArtifactKind.REQUIREMENTS
    assert {k for p, k in kinds.items() if p != "notes.txt"} == {ArtifactKind.REQUIREMENTS}


def test_pinned_unpinned_and_facts(tmp_path: Path) -> None:
    write(
        tmp_path,
        "requirements.txt",
        "# pinned\ntorch==2.1.0\ntransformers>=4.30,<5  # range\nnumpy\n"
        "scipy==1.*\nfoo[extra]==1.0 ; python_version < '3.12'\n",
    )
    report = deps(tmp_path)
    assert requirements(report) == [
        ("foo", "1.0", "==1.0", "pkg:pypi/foo@1.0", "pinned"),
        ("numpy", "", "", "", "range"),
        ("scipy", "", "==1.*", "", "range"),
        ("torch", "2.1.0", "==2.1.0", "pkg:pypi/torch@2.1.0", "pinned"),
        ("transformers", "", "<5,>=4.30", "", "range"),
    ]
    facts = [f for f in report.facts if f.key == "dependency.requirement"]
    torch = next(f for f in facts if f.value[0] == "torch")  # type: ignore[index]
    assert torch.location.path == "requirements.txt" and torch.location.offset == 9
    unpinned = [f for f in report.findings if f.rule == "DEP001"]
    assert len(unpinned) == 3 and all(f.severity.label == "low" for f in unpinned)
    # an unpinned requirement alone never fails the default gate
    assert report.verdict is not None and report.verdict.passed


def test_continuations_hashes_and_mixed_hash_mode(tmp_path: Path) -> None:
    write(
        tmp_path,
        "requirements.txt",
        "torch==2.1.0 \\\n    --hash=sha256:aaaa \\\n    --hash=sha256:bbbb\nnumpy==1.26.0\n",
    )
    report = deps(tmp_path)
    dep002 = [f for f in report.findings if f.rule == "DEP002"]
    assert [f.evidence for f in dep002] == ["numpy==1.26.0"]
    assert dep002[0].message.endswith("(line 4)")  # the physical line, after the continuation
    assert dep002[0].severity.label == "medium"
    # the continued requirement is one requirement, reported at its first line
    assert [v[0] for v in requirements(report)] == ["numpy", "torch"]
    write(tmp_path, "requirements.txt", "--require-hashes\nnumpy==1.26.0\n")
    declared = [f for f in deps(tmp_path).findings if f.rule == "DEP002"]
    assert [(f.severity.label, "--require-hashes" in f.message) for f in declared] == [
        ("medium", True)
    ]
    write(tmp_path, "requirements.txt", "torch==2.1.0 --hash=sha256:aa\nnumpy==1.26.0\n")
    strict = deps(tmp_path, require_hashes=True)
    assert [f.severity.label for f in strict.findings if f.rule == "DEP002"] == ["high"]


def test_indexes_and_hosts(tmp_path: Path) -> None:
    write(
        tmp_path,
        "requirements.txt",
        "--extra-index-url https://bob:hunter2@pypi.corp.example/simple\n"
        "--index-url=http://mirror.example/simple\n"
        "-i https://mirror.example/simple\n"
        "-f ./wheels\n--find-links https://wheels.example/\n"
        "--trusted-host mirror.example\n--no-index --pre\n",
    )
    report = deps(tmp_path)
    got = [
        (f.rule, f.severity.label)
        for f in sorted(report.findings, key=lambda f: f.location.offset or 0)
        if f.rule != "DEP023"
    ]
    assert got == [
        ("DEP003", "high"),
        ("DEP004", "high"),
        ("DEP004", "medium"),
        ("DEP005", "high"),
        ("DEP005", "medium"),
        ("DEP006", "high"),
    ]
    text = " ".join(f.message + f.evidence for f in report.findings)
    assert "hunter2" not in text and "bob" not in text and "***@pypi.corp.example" in text


def test_url_vcs_and_local_paths(tmp_path: Path) -> None:
    write(
        tmp_path,
        "requirements.txt",
        "-e ./pkg\n./other\nlocal.whl\nfile:///opt/pkg\n"
        "git+https://github.com/acme/lib.git@main#egg=acmelib\n"
        "git+https://github.com/acme/lib.git@" + "a" * 40 + "#egg=acmelib2\n"
        "https://example.com/pkg-1.0.tar.gz\nhttp://example.com/pkg-2.0.tar.gz\n"
        "requests @ https://files.example/requests-2.0-py3-none-any.whl\n",
    )
    report = deps(tmp_path)
    kinds = sorted((v[4], v[0]) for v in requirements(report))
    assert kinds == [
        ("path", ""),
        ("path", ""),
        ("path", ""),
        ("path", ""),
        ("url", ""),
        ("url", ""),
        ("url", "requests"),
        ("vcs", "acmelib"),
        ("vcs", "acmelib2"),
    ]
    by_rule: dict[str, list[str]] = {}
    for f in report.findings:
        by_rule.setdefault(f.rule, []).append(f.severity.label)
    assert sorted(by_rule["DEP009"]) == ["high"] * 4  # local paths run their build on install
    assert sorted(by_rule["DEP008"]) == ["high", "medium"]  # moving ref vs full commit
    assert sorted(by_rule["DEP007"]) == ["high", "medium", "medium"]  # plain http is high
    assert report.verdict is not None and not report.verdict.passed


def test_unparseable_lines_and_files_fail_closed(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "torch==2.1.0\nthis is not valid!!\n--frobnicate\n-r\n")
    (tmp_path / "requirements-bin.txt").write_bytes(b"torch==2.1\n\xff\xfe bad\n")
    write(tmp_path, "pyproject.toml", "[project\ndependencies = [")
    write(tmp_path, "Pipfile.lock", "{not json")
    report = deps(tmp_path)
    dep011 = [f for f in report.findings if f.rule == "DEP011"]
    assert len(dep011) == 4 and all(f.severity.label == "high" for f in dep011)
    dep012 = sorted(f.location.path for f in report.findings if f.rule == "DEP012")
    assert dep012 == ["Pipfile.lock", "pyproject.toml"]
    assert report.verdict is not None and not report.verdict.passed


def test_includes_inside_the_root_cycles_and_escapes(tmp_path: Path) -> None:
    root = tmp_path / "model"
    write(root, "requirements.txt", "-r base.txt\n-c ../outside.txt\n-r https://x.example/r.txt\n")
    write(root, "base.txt", "pandas==2.0.0\n-r requirements.txt\n")
    write(tmp_path, "outside.txt", "evil==1.0\n")
    report = deps(root)
    # base.txt is not a requirement file by name: parsed through the include, under its own path
    pandas = [f for f in report.facts if f.key == "dependency.requirement"]
    assert [(f.location.path, f.value[0]) for f in pandas] == [("base.txt", "pandas")]  # type: ignore[index]
    dep013 = sorted((f.location.path, f.message) for f in report.findings if f.rule == "DEP013")
    assert [p for p, _ in dep013] == ["base.txt", "requirements.txt", "requirements.txt"]
    messages = " ".join(m for _, m in dep013)
    assert "include cycle" in messages and "outside the scan root" in messages
    assert "URL is never fetched" in messages
    assert "evil" not in str(requirements(report))


def test_included_requirement_files_are_reported_once(tmp_path: Path) -> None:
    write(tmp_path, "requirements.txt", "-r requirements-base.txt\ntorch==2.1.0\n")
    write(tmp_path, "requirements-base.txt", "numpy\n")
    report = deps(tmp_path)
    assert [(f.rule, f.location.path) for f in report.findings if f.rule == "DEP001"] == [
        ("DEP001", "requirements-base.txt")
    ]


def test_a_huge_file_is_bounded(tmp_path: Path) -> None:
    lines = "--extra-index-url https://pkgs.example/simple\n"
    lines += "".join(f"pkg{i}=={i}.0\n" for i in range(100_000))
    write(tmp_path, "requirements.txt", lines)
    report = deps(tmp_path)
    facts = [f for f in report.facts if f.key == "dependency.requirement"]
    assert len(facts) == Limits().max_requirements
    limit = [f for f in report.findings if f.rule == "GEN002"]
    assert limit and limit[0].severity.label == "high"
    assert "DEP003" in {f.rule for f in report.findings}  # found before the cap, still reported
    assert report.verdict is not None and not report.verdict.passed


def test_lock_files(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a/uv.lock",
        """
version = 1
[[package]]
name = "mymodel"
version = "0.1.0"
source = { editable = "." }
[[package]]
name = "torch"
version = "2.1.0"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://x/torch.tar.gz", hash = "sha256:aa" }
[[package]]
name = "internal"
version = "1.0"
source = { registry = "https://pkgs.corp.example/simple" }
[[package]]
name = "helper"
version = "0.0.1"
source = { directory = "../helper" }
""",
    )
    write(
        tmp_path,
        "b/poetry.lock",
        """
[[package]]
name = "Requests"
version = "2.19.0"
files = [{file = "requests-2.19.0.whl", hash = "sha256:bb"}]
[[package]]
name = "lib"
version = "0.1"
[package.source]
type = "git"
url = "https://github.com/acme/lib.git"
reference = "main"
resolved_reference = "0123456789abcdef0123456789abcdef01234567"
""",
    )
    write(
        tmp_path,
        "c/Pipfile.lock",
        """{"_meta": {"sources": [
        {"url": "https://pypi.org/simple", "verify_ssl": true},
        {"url": "https://pkgs.corp.example/simple", "verify_ssl": false}]},
      "default": {"numpy": {"version": "==1.26.0", "hashes": ["sha256:cc"]},
                  "mine": {"path": ".", "editable": true}}, "develop": {}}""",
    )
    write(
        tmp_path,
        "d/pylock.toml",
        """
lock-version = "1.0"
[[packages]]
name = "pillow"
version = "10.0.0"
wheels = [{url = "https://x/pillow.whl", hashes = {sha256 = "dd"}}]
[[packages]]
name = "tool"
vcs = {type = "git", url = "https://github.com/acme/tool.git", commit-id = "abc"}
""",
    )
    write(
        tmp_path,
        "e/pyproject.toml",
        """
[project]
name = "x"
dependencies = ["torch==2.1.0", "transformers>=4", "local @ file:///srv/local"]
[project.optional-dependencies]
dev = ["pytest"]
[build-system]
requires = ["setuptools>=68"]
""",
    )
    report = deps(tmp_path)
    got = {
        (f.location.path, f.value[0], f.value[4])
        for f in report.facts  # type: ignore[index]
        if f.key == "dependency.requirement"
    }
    assert got == {
        ("a/uv.lock", "torch", "pinned"),
        ("a/uv.lock", "internal", "pinned"),
        ("a/uv.lock", "helper", "path"),
        ("b/poetry.lock", "requests", "pinned"),
        ("b/poetry.lock", "lib", "vcs"),
        ("c/Pipfile.lock", "numpy", "pinned"),
        ("c/Pipfile.lock", "mine", "path"),
        ("d/pylock.toml", "pillow", "pinned"),
        ("d/pylock.toml", "tool", "vcs"),
        ("e/pyproject.toml", "torch", "pinned"),
        ("e/pyproject.toml", "transformers", "range"),
        ("e/pyproject.toml", "local", "path"),
        ("e/pyproject.toml", "pytest", "range"),
        ("e/pyproject.toml", "setuptools", "range"),
    }
    rules = {(f.location.path, f.rule) for f in report.findings}
    assert ("a/uv.lock", "DEP004") in rules and ("a/uv.lock", "DEP009") in rules
    assert ("c/Pipfile.lock", "DEP003") in rules and ("c/Pipfile.lock", "DEP006") in rules
    assert ("b/poetry.lock", "DEP008") in rules and ("e/pyproject.toml", "DEP009") in rules
    lib = next(
        f for f in report.findings if f.rule == "DEP008" and f.location.path == "b/poetry.lock"
    )
    assert lib.severity.label == "medium"  # pinned to a full commit


def test_typosquats_are_flagged_and_the_list_itself_never_is(tmp_path: Path) -> None:
    for name in sorted(POPULAR_ML_PACKAGES | NEAR_MISS_ALLOWED):
        assert near_miss(name) is None, name
    assert near_miss("torchh") == "torch"
    assert near_miss("tranformers") == "transformers"
    assert near_miss("nmupy") == "numpy"
    assert near_miss("scikitlearn") == "scikit-learn"
    assert near_miss("hugging_face_hub") == "huggingface-hub"
    assert near_miss("Safetensor") == "safetensors"
    for unrelated in ("flask", "django", "rich", "attrs", "numpy-financial", "torchmetrics"):
        assert near_miss(unrelated) is None, unrelated
    write(tmp_path, "requirements.txt", "".join(f"{n}\n" for n in sorted(POPULAR_ML_PACKAGES)))
    assert not [f for f in deps(tmp_path).findings if f.rule == "DEP010"]
    write(tmp_path, "requirements.txt", "tranformers==4.0.0\n")
    squat = [f for f in deps(tmp_path).findings if f.rule == "DEP010"]
    assert len(squat) == 1 and squat[0].severity.label == "high"


@pytest.mark.parametrize("name", ["requirements.txt", "pyproject.toml", "uv.lock"])
def test_empty_requirement_files_are_clean(tmp_path: Path, name: str) -> None:
    write(tmp_path, name, "# nothing yet\n")
    report = deps(tmp_path)
    assert [f.rule for f in report.findings] == ["DEP023"]
    assert report.verdict is not None and report.verdict.passed


def test_manifest_offsets_are_byte_offsets_of_the_line(tmp_path: Path) -> None:
    text = (
        '# café — ünïcode before\n[project]\nname = "x"\ndependencies = [\n'
        '  "torch==2.1.0",\n  "numpy==1.26.0",\n  "transformers>=4",\n]\n'
    )
    write(tmp_path, "pyproject.toml", text)
    data = text.encode()
    offsets = {
        f.value[0]: f.location.offset  # type: ignore[index]
        for f in deps(tmp_path).facts
        if f.key == "dependency.requirement"
    }
    assert offsets == {
        "torch": data.index(b'  "torch'),
        "numpy": data.index(b'  "numpy'),
        "transformers": data.index(b'  "transformers'),
    }
    (unpinned,) = [f for f in deps(tmp_path).findings if f.rule == "DEP001"]
    assert unpinned.message.endswith("(line 7)")


def test_a_diamond_of_includes_is_read_once(tmp_path: Path) -> None:
    # each level includes the next one twice: 2**7 paths, 8 distinct files
    for level in range(7):
        write(tmp_path, f"lvl{level}.txt", f"-r lvl{level + 1}.txt\n-r ./lvl{level + 1}.txt\n")
    write(tmp_path, "lvl7.txt", "numpy==1.26.0\n")
    write(tmp_path, "requirements.txt", "-r lvl0.txt\n")
    report = deps(tmp_path)
    facts = [f for f in report.facts if f.key == "dependency.requirement"]
    assert [(f.location.path, f.value[0]) for f in facts] == [("lvl7.txt", "numpy")]  # type: ignore[index]
    assert [f.rule for f in report.findings] == ["DEP023"]


def test_a_result_that_followed_an_include_is_never_served_from_the_cache(tmp_path: Path) -> None:
    """The scan of requirements.txt depends on base.txt too (``note_sibling_read``): editing
    base.txt must change the verdict even though requirements.txt's bytes did not change."""
    from supplychain.cache import VerdictCache
    from supplychain.policy import Policy

    root = tmp_path / "model"
    write(root, "requirements.txt", "-r base.txt\n")
    write(root, "base.txt", "numpy==1.26.0\n")
    cache = VerdictCache.open(tmp_path / "cache.sqlite", settle_seconds=0)
    try:
        settings = service.settings_from_policy(Policy())
        first = service.run([root], settings, Policy(), cache=cache)
        assert [f.rule for f in first.findings] == ["DEP023"]
        write(root, "base.txt", "numpy==1.26.0\n--extra-index-url https://evil.example/simple\n")
        second = service.run([root], settings, Policy(), cache=cache)
    finally:
        cache.close()
    assert "DEP003" in {f.rule for f in second.findings}


_ALPHABET = "abcxyz019 =<>!~.;@[]#\\-/:'\"\t\n\r\u00e9\u202e\x00\x1b"


@pytest.mark.parametrize("name", ["requirements.txt", "pyproject.toml", "uv.lock", "Pipfile.lock"])
def test_hostile_text_never_crashes_the_scanner(tmp_path: Path, name: str) -> None:
    """Random lines and option soup: findings (fail closed) or nothing, never a failed outcome."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    words = st.sampled_from(
        [
            "-r",
            "-c",
            "-e",
            "-i",
            "--hash=sha256:",
            "--extra-index-url",
            "git+",
            "http://",
            "file:",
            "torch",
            "==",
            ">=",
            "@",
            ";",
            "\\",
            "[",
            "]",
            "=",
            '"',
            "{",
            "}",
            "\n",
        ]
    )
    chunks = st.lists(st.one_of(words, st.text(_ALPHABET, max_size=12)), max_size=40)

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(chunks)
    def run(parts: list[str]) -> None:
        target = tmp_path / "fuzz"
        write(target, name, "".join(parts))
        report = deps(target)
        assert not report.failed, [r.reason for r in report.failed]

    run()


def test_nul_byte_in_an_include_is_refused_not_a_crash(tmp_path: Path) -> None:
    # found by test_hostile_text_never_crashes_the_scanner: Path.resolve raised ValueError
    write(tmp_path, "requirements.txt", "-r base\x00.txt\n")
    report = deps(tmp_path)
    assert not report.failed
    assert [f.rule for f in report.findings if f.rule != "DEP023"] == ["DEP013"]


def test_credentials_never_reach_findings_or_facts(tmp_path: Path) -> None:
    write(
        tmp_path,
        "requirements.txt",
        "--index-url https://pkgs.example/simple?token=sekrit1\n"
        "private @ https://__token__:sekrit2@pkgs.example/private-1.0.whl\n"
        "git+https://oauth2:sekrit3@git.example/lib.git@v1#egg=lib\n",
    )
    report = deps(tmp_path)
    text = repr(report.findings) + repr(report.facts)
    assert "sekrit" not in text
    assert "token=***" in text and "***@pkgs.example" in text and "***@git.example" in text


def test_includes_resolve_from_the_name_opened_like_pip(tmp_path: Path) -> None:
    """pip joins ``-r`` to the directory of the path it opened: a linked requirements.txt
    includes files beside the link, not beside its target."""
    write(tmp_path, "sub/actual.txt", "-r base-deps.txt\n")
    write(tmp_path, "base-deps.txt", "numpy==1.26.0\n")
    (tmp_path / "requirements.txt").symlink_to(tmp_path / "sub" / "actual.txt")
    report = deps(tmp_path)
    # (the one file has two names, the link and sub/actual.txt, so the fact comes once per name)
    assert {
        (f.location.path, f.value[0])  # type: ignore[index]
        for f in report.facts
        if f.key == "dependency.requirement"
    } == {("base-deps.txt", "numpy")}
    assert not [f for f in report.findings if f.rule == "DEP013"]
