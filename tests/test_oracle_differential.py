"""Differential test: CPython's unpickler (instrumented, inert) against the scanner's verdict.

Property: whenever the oracle (``tests.oracle_unpickler``) sees the unpickler *call* a global
that ``scanners.allowlist.classify`` does not allow, the scan of the same bytes fails the default
gate. Calls recorded before an unpickling error count (torch has already run them: nullifAI).
Inputs are hypothesis-composed opcode programs (GLOBAL/STACK_GLOBAL/INST/OBJ/REDUCE/NEWOBJ/BUILD,
memo, MARK, tuples, containers, persistent ids; protocols 0-5) over a mix of allowlisted ML
names, denylisted names and unknown names, some wrapped as a torch zip, plus byte-level
mutations (flips, truncations, insertions) of them. The default run is bounded; the ``slow``
variant runs many more examples (numbers in docs/denylist.md).
"""

from __future__ import annotations

import io
import struct
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanners.allowlist import classify
from scanners.pickle_vm import NAME_ALIASES, canonical_module
from supplychain import policy
from supplychain.engine import scan_paths
from tests.oracle_unpickler import Oracle, OracleResult

# --- names the programs draw from --------------------------------------------------------

ALLOWED_NAMES = [
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch", "FloatStorage"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "dtype"),
    ("copyreg", "_reconstructor"),
    ("builtins", "set"),
    ("builtins", "object"),
    ("__builtin__", "set"),
    ("sklearn.linear_model._logistic", "LogisticRegression"),
    ("datetime", "datetime"),
    ("codecs", "encode"),
]
DENIED_NAMES = [
    ("os", "system"),
    ("posix", "system"),
    ("builtins", "eval"),
    ("__builtin__", "eval"),
    ("subprocess", "Popen"),
    ("builtins", "getattr"),
    ("_operator", "attrgetter"),
    ("pipes", "Template.copy"),
    ("optparse", "Values.read_file"),
    ("pickle", "loads"),
    ("runpy", "_run_code"),
    ("torch.serialization", "os.system"),
]
UNKNOWN_NAMES = [
    ("mylib.helpers", "run"),
    ("foo", "Bar"),
    ("evil_pkg", "Thing"),
    ("numpy", "frobnicate"),
    ("torch.nn.modules.linear", "Linear"),
    ("torch.nn.modules.linear", "Linear.forward"),
    ("sklearn.utils", "Bunch"),
    ("collections", "UserDict"),
]
NAMES = st.sampled_from(ALLOWED_NAMES + DENIED_NAMES + UNKNOWN_NAMES)


# --- opcode programs -----------------------------------------------------------------------


def _str(text: str, proto: int) -> bytes:
    data = text.encode()
    if proto >= 4 and len(data) < 256:
        return b"\x8c" + bytes([len(data)]) + data
    if proto >= 1:
        return b"X" + struct.pack("<I", len(data)) + data
    return b"V" + text.encode("raw-unicode-escape") + b"\n"


def _global(mod: str, name: str, proto: int, stack: bool) -> bytes:
    if stack and proto >= 4:
        return _str(mod, proto) + _str(name, proto) + b"\x93"
    return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"


def _int(value: int, proto: int) -> bytes:
    if proto >= 1 and 0 <= value < 256:
        return b"K" + bytes([value])
    return b"I" + str(value).encode() + b"\n"


@st.composite
def values(draw: st.DrawFn, proto: int, depth: int = 0) -> bytes:
    """One opcode fragment that leaves exactly one value on the stack."""
    leaf = depth >= 3
    kind = draw(
        st.sampled_from(
            ["int", "str", "none"]
            if leaf
            else [
                "int",
                "str",
                "none",
                "tuple",
                "list",
                "dict",
                "global",
                "call",
                "call",
                "inst",
                "obj",
                "newobj",
                "build",
                "memo",
                "persid",
                "call_result",
                "newobj_ex",
                "computed_global",
                "torch_tensor",
                "raw",
            ]
        )
    )
    sub = values(proto, depth + 1)
    if kind == "int":
        return _int(draw(st.integers(0, 300)), proto)
    if kind == "str":
        return _str(draw(st.sampled_from(["echo supplychain-sample", "x", "os", "system"])), proto)
    if kind == "none":
        return b"N"
    if kind == "tuple":
        items = draw(st.lists(sub, max_size=3))
        return b"(" + b"".join(items) + b"t"
    if kind == "list":
        items = draw(st.lists(sub, max_size=3))
        head = b"]" if proto >= 1 else b"(l"
        return head + b"".join(i + b"a" for i in items)
    if kind == "dict":
        pairs = draw(st.lists(st.tuples(sub, sub), max_size=2))
        head = b"}" if proto >= 1 else b"(d"
        return head + b"".join(k + v + b"s" for k, v in pairs)
    mod, name = draw(NAMES)
    stack = draw(st.booleans())
    args = draw(st.lists(sub, max_size=2))
    if kind == "global":
        return _global(mod, name, proto, stack)
    if kind == "call":
        return _global(mod, name, proto, stack) + b"(" + b"".join(args) + b"tR"
    if kind == "call_result":
        # Call the result of a call: pkgutil.resolve_name(...)(...) shapes.
        inner = _global(mod, name, proto, stack) + b"(" + b"".join(args) + b"tR"
        return inner + b"(" + b"".join(args) + b"tR"
    if kind == "inst":
        return b"(" + b"".join(args) + b"i" + mod.encode() + b"\n" + name.encode() + b"\n"
    if kind == "obj":
        return b"(" + _global(mod, name, proto, stack) + b"".join(args) + b"o"
    if kind == "newobj":
        if proto < 2:
            return _global(mod, name, proto, stack)
        return _global(mod, name, proto, stack) + b"(" + b"".join(args) + b"t\x81"
    if kind == "build":
        target = draw(sub)
        state = draw(sub)
        return target + state + b"b"
    if kind == "memo":
        value = draw(sub)
        idx = draw(st.integers(0, 3))
        if proto >= 1:
            return value + b"q" + bytes([idx]) + b"0h" + bytes([idx])
        return value + b"p" + str(idx).encode() + b"\n0g" + str(idx).encode() + b"\n"
    if kind == "newobj_ex":
        if proto < 4:
            return _global(mod, name, proto, stack)
        return _global(mod, name, proto, stack) + b"(" + b"".join(args) + b"t}\x92"
    if kind == "computed_global":
        # STACK_GLOBAL operands fetched from the memo, not literal strings next to it.
        if proto < 4:
            return _global(mod, name, proto, stack) + b"(tR"
        return (
            _str(mod, proto) + b"q\xc8" + b"0" + _str(name, proto) + b"q\xc9" + b"0"
            b"h\xc8h\xc9\x93(tR"
        )
    if kind == "torch_tensor":
        # What torch.save writes: _rebuild_tensor_v2(persistent storage, offset, size, stride…)
        storage = (
            b"("
            + _str("storage", proto)
            + _global("torch", "FloatStorage", proto, stack)
            + _str("0", proto)
            + _str("cpu", proto)
            + _int(4, proto)
            + b"t"
        )
        persid = storage + b"Q" if proto >= 1 else b"P0\n"
        return (
            _global("torch._utils", "_rebuild_tensor_v2", proto, stack)
            + b"("
            + persid
            + _int(0, proto)
            + b"("
            + _int(4, proto)
            + b"t("
            + _int(1, proto)
            + b"t"
            + b"\x89" * (proto >= 2)
            + b"N" * (proto < 2)
            + b"}tR"
        )
    if kind == "raw":
        # A stray opcode in front of a fragment: stack discipline may break (error paths).
        op = draw(st.sampled_from([b"0", b"1", b"2", b"(", b"t", b"R", b"b", b"\x81", b"s"]))
        return op + draw(sub)
    # persid
    if proto >= 1:
        return draw(sub) + b"Q"
    return b"P" + b"storage" + b"\n"


@st.composite
def programs(draw: st.DrawFn) -> tuple[bytes, str]:
    """A whole pickle (optionally mutated, optionally in a torch zip) and its file name."""
    proto = draw(st.integers(0, 5))
    head = b"\x80" + bytes([proto]) if proto >= 2 else b""
    body = b"(" + b"".join(draw(st.lists(values(proto), min_size=1, max_size=4))) + b"t."
    data = head + body
    mutation = draw(st.sampled_from(["none", "none", "flip", "truncate", "insert"]))
    if mutation != "none" and len(data) > 2:
        at = draw(st.integers(1, len(data) - 1))
        if mutation == "flip":
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
        elif mutation == "truncate":
            data = data[:at]
        else:
            data = data[:at] + draw(st.binary(min_size=1, max_size=3)) + data[at:]
    if draw(st.integers(0, 9)) == 0:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("archive/data.pkl", data)
            z.writestr("archive/version", "3\n")
        return buf.getvalue(), "model.pt"
    return data, draw(st.sampled_from(["model.pkl", "pytorch_model.bin", "weights.dat"]))


# --- the property ---------------------------------------------------------------------------


def _canonical(module: str, name: str) -> tuple[str, str]:
    alias = NAME_ALIASES.get((module, name))
    if alias is not None:
        mod, _, nm = alias.rpartition(".")
        return mod, nm
    return canonical_module(module), name


def disallowed_calls(result: OracleResult) -> list[str]:
    """The globals the oracle saw called that the allowlist does not allow."""
    out = []
    for module, name in result.calls:
        if module == "<persistent>":
            continue
        mod, nm = _canonical(module, name)
        if not classify(mod, nm).allowed:
            out.append(f"{module}.{name}")
    return sorted(set(out))


@pytest.fixture(scope="module")
def oracle() -> Iterator[Oracle]:
    o = Oracle()
    yield o
    o.close()


def check(oracle: Oracle, tmp_path: Path, data: bytes, name: str) -> None:
    """One differential case: the oracle's calls against the scanner's gate."""
    seen = oracle.judge(data)
    if seen.timeout:
        return  # no verdict from the oracle to compare against (counted in docs by the slow run)
    bad = disallowed_calls(seen)
    if not bad:
        return
    target = tmp_path / name
    target.write_bytes(data)
    report = policy.apply(scan_paths([target]), policy.Policy())
    assert report.verdict is not None
    shown = [(f.rule, f.severity.label, f.message) for f in report.findings]
    assert not report.verdict.passed, (bad, data, shown, seen.error)


def _run(oracle: Oracle, tmp_path_factory: pytest.TempPathFactory, case: tuple[bytes, str]) -> None:
    check(oracle, tmp_path_factory.mktemp("oracle"), *case)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=programs())
def test_oracle_called_disallowed_global_implies_gate_fails(
    oracle: Oracle, tmp_path_factory: pytest.TempPathFactory, case: tuple[bytes, str]
) -> None:
    _run(oracle, tmp_path_factory, case)


@dataclass
class Tally:
    """Counts of one collecting run (the slow variant's numbers for docs/denylist.md)."""

    examples: int = 0
    timeouts: int = 0
    with_disallowed_call: int = 0
    disagreements: list[tuple[list[str], bytes, str, list[str]]] = field(default_factory=list)

    def causes(self) -> Counter[str]:
        """Disagreements by disallowed name and the scanner's severity for it."""
        out: Counter[str] = Counter()
        for bad, _data, _name, shown in self.disagreements:
            for b in bad:
                out[
                    f"{b} -> {next((s for s in shown if s.startswith(b + ':')), 'no finding')}"
                ] += 1
        return out


def collect(oracle: Oracle, tmp: Path, examples: int) -> Tally:
    """Run the property over ``examples`` cases without stopping at the first disagreement."""
    tally = Tally()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=programs())
    def one(case: tuple[bytes, str]) -> None:
        data, name = case
        tally.examples += 1
        seen = oracle.judge(data)
        if seen.timeout:
            tally.timeouts += 1
            return
        bad = disallowed_calls(seen)
        if not bad:
            return
        tally.with_disallowed_call += 1
        target = tmp / name
        target.write_bytes(data)
        report = policy.apply(scan_paths([target]), policy.Policy())
        assert report.verdict is not None
        if report.verdict.passed:
            shown = [f"{f.message.split(';')[0]} [{f.severity.label}]" for f in report.findings]
            tally.disagreements.append((bad, data, name, shown))

    one()
    return tally


@pytest.mark.slow
def test_oracle_differential_slow(oracle: Oracle, tmp_path: Path) -> None:
    # Many more random (not derandomized) examples; every disagreement is listed, not shrunk.
    tally = collect(oracle, tmp_path, 3000)
    summary = (
        f"examples={tally.examples} timeouts={tally.timeouts} "
        f"with_disallowed_call={tally.with_disallowed_call} "
        f"disagreements={len(tally.disagreements)} restarts={oracle.restarts}\n"
        + "\n".join(f"{n} {c}" for c, n in tally.causes().most_common())
    )
    print(summary)
    assert not tally.disagreements, summary + "\n" + repr(tally.disagreements[:5])


# --- the oracle itself must see what matters and never run anything ------------------------


def test_oracle_records_calls_not_rebuilds(oracle: Oracle) -> None:
    called = oracle.judge(b"\x80\x04" + _global("os", "system", 4, True) + b"(Vx\ntR.")
    assert called.calls == (("os", "system"),) and called.error is None
    rebuilt = oracle.judge(b"\x80\x04" + _global("foo", "Bar", 4, True) + b")\x81}b.")
    assert rebuilt.calls == () and rebuilt.news == (("foo", "Bar"),)


def test_oracle_keeps_calls_made_before_a_broken_stream(oracle: Oracle) -> None:
    seen = oracle.judge(b"cos\nsystem\n(Vx\ntR\xff")
    assert seen.calls == (("os", "system"),) and seen.error is not None


def test_oracle_reads_the_data_member_of_a_torch_zip(oracle: Oracle) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02cposix\nsystem\n(Vx\ntR.")
    assert oracle.judge(buf.getvalue()).calls == (("posix", "system"),)


def test_oracle_is_inert(oracle: Oracle, tmp_path: Path) -> None:
    # If anything were really called, this file would appear.
    marker = tmp_path / "ran"
    payload = f"open({str(marker)!r}, 'w').write('x')"
    seen = oracle.judge(
        b"\x80\x02c__builtin__\neval\n(X"
        + struct.pack("<I", len(payload))
        + payload.encode()
        + b"tR."
    )
    assert seen.calls == (("builtins", "eval"),)
    assert not marker.exists()


def test_oracle_protocol_below_4_refuses_dotted_names_like_cpython(oracle: Oracle) -> None:
    seen = oracle.judge(b"cos\npath.join\n(tR.")
    assert seen.calls == () and seen.error is not None


# --- disagreements the oracle found, kept as named regressions --------------------------------


def test_oracle_found_truncated_inst_line_is_run_by_the_pure_python_unpickler(
    oracle: Oracle, tmp_path: Path
) -> None:
    # Slow run 4 (docs/denylist.md): a stream that ends inside INST's name line, without the
    # newline. The pure-Python unpickler (pickle._Unpickler, and dill's Unpickler built on it)
    # chops the last byte as if it were the newline and *calls* ``os.system`` before hitting
    # EOF; the C unpickler reports truncation instead. Under a non-pickle name the file must
    # still be identified as a pickle and fail the gate.
    data = b"(V" + b"echo supplychain-sample" + b"\nios\nsystemX"
    seen = oracle.judge(data)
    assert seen.calls == (("os", "system"),)
    target = tmp_path / "weights.dat"
    target.write_bytes(data)
    report = policy.apply(scan_paths([target]), policy.Policy())
    assert report.verdict is not None
    assert not report.verdict.passed, [(r.scanner, r.status.value) for r in report.results]
