"""Import direction and banned calls, checked from source with ``ast`` (no extra dependency)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = sorted(p.stem for p in (ROOT / "supplychain" / "core").glob("*.py") if p.stem != "__init__")
LEAVES = {f"supplychain.core.{name}" for name in CORE}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _project(names: set[str]) -> set[str]:
    return {n for n in names if n.split(".")[0] in {"supplychain", "scanners", "sbom"}}


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_core_imports_nothing_above_it(leaf: str) -> None:
    """The ground floor imports only itself (and the package version string)."""
    path = ROOT / (leaf.replace(".", "/") + ".py")
    for name in _project(_imports(path)):
        assert name.startswith("supplychain.core.") or name in {
            "supplychain",
            "supplychain.__version__",
            "supplychain.core",
            "supplychain.core.__version__",
        }, f"{leaf} imports {name}"


def test_core_holds_the_base_and_the_rules() -> None:
    assert {"model", "rules", "errors", "limits", "settings"} <= set(CORE)
    for old in ("model", "rules", "errors", "limits", "settings"):
        assert not (ROOT / "supplychain" / f"{old}.py").exists(), old


PACKAGES = {"supplychain", "scanners", "sbom"}


def test_no_import_circle_between_project_modules() -> None:
    """Module-level imports form a DAG (imports inside functions are lazy and allowed)."""
    graph: dict[str, set[str]] = {}
    for package in ("supplychain", "scanners", "sbom"):
        for path in _modules(package):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join(parts)
            tree = ast.parse(path.read_text())
            deps: set[str] = set()
            for node in tree.body:
                targets: list[str] = []
                if isinstance(node, ast.Import):
                    targets = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    targets = [node.module]
                deps.update(
                    t for t in targets if t.split(".")[0] in {"supplychain", "scanners", "sbom"}
                )
            graph[name] = deps
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if dep not in graph or dep == node:
                continue
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep) :], dep] if dep in stack else [node, dep]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_scanners_import_only_the_leaf_modules() -> None:
    for path in _modules("scanners"):
        for name in _project(_imports(path)):
            top = name.split(".")[0]
            assert top != "sbom", f"{path.name} imports {name}"
            if top == "supplychain":
                assert any(name == leaf or name.startswith(leaf + ".") for leaf in LEAVES), (
                    f"{path.relative_to(ROOT)} imports {name}"
                )


def test_sbom_never_imports_scanners_or_the_cli() -> None:
    for path in _modules("sbom"):
        for name in _project(_imports(path)):
            assert not name.startswith("scanners"), f"{path.name} imports {name}"
            assert not name.startswith(
                ("supplychain.cli", "supplychain.engine", "supplychain.server")
            )


def test_formats_and_engine_never_import_the_cli() -> None:
    for path in [
        *_modules("supplychain/formats"),
        ROOT / "supplychain/engine.py",
        ROOT / "supplychain/policy.py",
    ]:
        for name in _project(_imports(path)):
            assert not name.startswith(("supplychain.cli", "supplychain.server")), path.name


BANNED = re.compile(
    r"\b(pickle|_pickle|cPickle|dill|cloudpickle|joblib|torch|marshal|numpy|np)\.loads?\(|"
    r"\.extractall\(|allow_pickle\s*=\s*True|load_model\(|trust_remote_code\s*=\s*True|"
    r"yaml\.load\(|(?<![\w.])(eval|exec)\("
)


def test_no_deserializer_or_eval_in_product_code() -> None:
    offenders = []
    for package in ("supplychain", "scanners", "sbom"):
        for path in _modules(package):
            for lineno, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if "noqa: never-executed" in line:
                    continue
                if BANNED.search(code) and not code.strip().startswith(("'", '"')):
                    offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert offenders == []


def test_scanner_registry_has_no_import_side_effects() -> None:
    import scanners

    names = [cls.name for cls in scanners.BUILTIN_SCANNERS]
    assert len(names) == len(set(names)), "scanner names must be unique"
    for cls in scanners.BUILTIN_SCANNERS:
        assert cls.kinds, cls.name
        for rule in cls.rules:
            assert re.fullmatch(r"[A-Z]{3}\d{3}", rule.id), rule.id
            assert rule.title and rule.explanation and rule.remediation


def test_cli_reaches_the_engine_only_through_the_service() -> None:
    """The CLI is a thin shell: scans go through ``supplychain.service`` (as the server will)."""
    names = _project(_imports(ROOT / "supplychain" / "cli.py"))
    assert not {n for n in names if n.startswith("supplychain.engine")}, names


def test_settings_and_checks_stay_low_in_the_layers() -> None:
    """Settings are ground-floor data (the fingerprint reads sources, it imports no scanner);
    report-level checks see records and facts, never the engine, service or CLI."""
    settings = _project(_imports(ROOT / "supplychain" / "core" / "settings.py"))
    allowed = ("supplychain.core.__version__", "supplychain.core", *LEAVES)
    assert all(n == "supplychain" or n.startswith(allowed) for n in settings), settings
    for name in _project(_imports(ROOT / "supplychain" / "checks.py")):
        assert not name.startswith(
            ("supplychain.engine", "supplychain.service", "supplychain.cli")
        ), name
    for path in _modules("scanners"):
        for name in _project(_imports(path)):
            assert not name.startswith(("supplychain.core.settings", "supplychain.checks")), (
                path.name
            )


def test_service_never_imports_the_cli_or_formats() -> None:
    for name in _project(_imports(ROOT / "supplychain" / "service.py")):
        assert not name.startswith(("supplychain.cli", "supplychain.formats")), name


def _all_imports(path: Path) -> set[str]:
    """Every absolute import in the module, module level or inside functions (lazy ones too)."""
    return _imports(path)


def _format_scanner_modules() -> set[str]:
    """The modules named in ``scanners.BUILTIN_SPECS`` (read from source: no import needed)."""
    source = (ROOT / "scanners" / "__init__.py").read_text()
    return {f"scanners.{m}" for m in re.findall(r'_spec\(\s*"([\w.]+)"', source)}


def test_format_scanners_do_not_import_each_other() -> None:
    """Format scanners share code through helpers (``scanners.containers``, ``_paths``,
    ``_magic``, ``_yaml``, ``pickle_analysis``, ``keras_config``, ``template_analysis``…), never
    through another scanner: no archive <-> torch circle, lazy in-function imports included."""
    formats = _format_scanner_modules()
    assert {"scanners.archive_scan", "scanners.torch_scan", "scanners.keras_scan"} <= formats
    found = set()
    for module in sorted(formats):
        path = ROOT / (module.replace(".", "/") + ".py")
        if not path.exists():
            path = ROOT / module.replace(".", "/") / "__init__.py"
        for name in _project(_all_imports(path)):
            for other in formats - {module}:
                if name == other or name.startswith(other + "."):
                    found.add((module, other))
    assert found == set(), sorted(found)


def test_the_container_toolkit_and_helpers_import_no_format_scanner() -> None:
    formats = _format_scanner_modules()
    helpers = [*_modules("scanners/containers")]
    helpers += [ROOT / "scanners" / f for f in ("_paths.py", "_magic.py", "_io.py", "_zip.py")]
    helpers += [ROOT / "scanners" / f for f in ("_yaml.py", "_extras.py")]
    helpers += [
        ROOT / "scanners" / f
        for f in ("pickle_analysis.py", "keras_config.py", "template_analysis.py")
    ]
    for path in helpers:
        for name in _project(_all_imports(path)):
            assert not any(name == f or name.startswith(f + ".") for f in formats), (
                f"{path.relative_to(ROOT)} imports {name}"
            )


def test_cli_never_imports_private_scanner_modules() -> None:
    """The CLI is a shell: scanner internals (``scanners._zip``, ``scanners._io``…) stay behind
    the service and the public scanner modules (``scanners.explain`` for ``explain``)."""
    for name in _project(_all_imports(ROOT / "supplychain" / "cli.py")):
        parts = name.split(".")
        assert not (parts[0] == "scanners" and any(p.startswith("_") for p in parts[1:])), name
