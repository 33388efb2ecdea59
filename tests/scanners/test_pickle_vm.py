"""The symbolic pickle machine: every opcode, memo, marks, stacked pickles, joblib, limits."""

from __future__ import annotations

import io
import pickle
import pickletools
import zlib
from pathlib import Path

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanners.pickle_vm import (
    Blob,
    Call,
    ComputedImport,
    Event,
    Extension,
    Import,
    JoblibArray,
    Persistent,
    PickleMachine,
    Stop,
    StreamError,
    TrailingData,
    canonical_module,
    explain,
    render,
)
from supplychain.core.errors import ArtifactError, LimitExceeded
from supplychain.core.limits import Limits
from tests.pickle_builders import PickleBuilder, call_pickle, global0


def walk(data: bytes, limits: Limits | None = None) -> list[Event]:
    return list(PickleMachine(io.BytesIO(data), limits).walk())


def imports(events: list[Event]) -> list[str]:
    return [e.ref.qualname for e in events if isinstance(e, Import)]


def errors(events: list[Event]) -> list[StreamError]:
    return [e for e in events if isinstance(e, StreamError)]


def genops_count(data: bytes) -> int:
    return sum(1 for _ in pickletools.genops(io.BytesIO(data)))


SAMPLE_VALUES: list[object] = [
    None,
    True,
    False,
    0,
    255,
    65535,
    -1,
    2**31,
    2**70,
    -(2**300),
    1.5,
    "",
    "ascii",
    "ünïcödé ☃",
    "x" * 300,
    b"",
    b"\x00\xff" * 200,
    bytearray(b"abc"),
    (),
    (1,),
    (1, 2),
    (1, 2, 3),
    (1, 2, 3, 4),
    [1, [2, [3]]],
    {"a": 1, "b": {"c": (1, "x")}},
    {1, 2, 3},
    frozenset({"a"}),
    complex(1, 2),
    slice(1, 5, 2),
    range(3),
]


@pytest.mark.parametrize("proto", [0, 1, 2, 3, 4, 5])
def test_every_protocol_walks_like_the_reference_parser(proto: int) -> None:
    shared = ["shared"]
    data = pickle.dumps([SAMPLE_VALUES, shared, shared, {"k": shared}], protocol=proto)
    machine = PickleMachine(io.BytesIO(data))
    events = list(machine.walk())
    assert not errors(events)
    assert isinstance(events[-1], Stop)
    assert machine.stats.opcodes == genops_count(data)


def test_protocol5_out_of_band_buffers_and_bytearray8() -> None:
    b = (
        PickleBuilder(5)
        .bytearray8(b"abc")
        .raw(b"\x97\x98")  # NEXT_BUFFER, READONLY_BUFFER
        .tuple2()
        .stop()
    )
    events = walk(bytes(b))
    assert not errors(events)
    assert "out-of-band buffer" in render(events[-1].result)  # type: ignore[union-attr]


def test_protocol0_text_opcodes_and_inst_obj() -> None:
    data = (
        b"(I01\nI00\nI42\nL7L\nF1.5\nS'it''s'\nVuni\\u20ac\n"
        b"p0\ng0\n0(lp1\n(dp2\n(tp3\n"
        b"(imymod\nKlass\n(cmymod\nOther\no"
        b"t."
    )
    events = walk(data)
    assert not errors(events), errors(events)
    assert imports(events) == ["mymod.Klass", "mymod.Other"]
    kinds = [e.kind for e in events if isinstance(e, Call)]
    assert kinds == ["INST", "OBJ"]


def test_stack_global_resolves_operands_through_the_memo() -> None:
    b = PickleBuilder(4).str("os").memoize().str("system").memoize().pop().pop()
    b.binget(0).binget(1).raw(b"\x93").mark().str("true").tuple().reduce().stop()
    events = walk(bytes(b))
    assert imports(events) == ["os.system"]
    call = next(e for e in events if isinstance(e, Call))
    assert render(call.result) == "os.system('true')"


def test_memo_long_forms_and_sparse_indices() -> None:
    b = PickleBuilder(4).str("builtins").long_binput(7).str("print").long_binput(4_000_000)
    b.pop().pop().long_binget(7).long_binget(4_000_000).raw(b"\x93").stop()
    events = walk(bytes(b))
    assert not errors(events)
    assert imports(events) == ["builtins.print"]


def test_missing_memo_key_is_a_stream_error() -> None:
    events = walk(bytes(PickleBuilder(4).binget(3).stop()))
    assert errors(events) and "memo key 3" in errors(events)[0].message


def test_computed_stack_global_operand_is_reported() -> None:
    b = PickleBuilder(4).call("builtins", "str", "os").str("system").raw(b"\x93").stop()
    events = walk(bytes(b))
    assert any(isinstance(e, ComputedImport) for e in events)


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("posix", "os"),
        ("nt", "os"),
        ("posixpath", "os.path"),
        ("__builtin__", "builtins"),
        ("_operator", "operator"),
        ("_pickle", "pickle"),
        ("cPickle", "pickle"),
        ("copy_reg", "copyreg"),
        ("_io", "io"),
        ("_functools", "functools"),
        ("numpy._core.multiarray", "numpy.core.multiarray"),
        ("torch._utils", "torch._utils"),
    ],
)
def test_module_aliases(module: str, expected: str) -> None:
    assert canonical_module(module) == expected


def test_broken_stream_keeps_everything_seen_before() -> None:
    data = call_pickle("os", "system", "true")[:-1] + b"\xff garbage"
    events = walk(data)
    assert imports(events) == ["os.system"]
    assert any(isinstance(e, Call) for e in events)
    err = errors(events)
    assert len(err) == 1 and err[0].offset == len(data) - len(b"\xff garbage")


@pytest.mark.parametrize("cut", [1, 2, 5, 9, 17, 30])
def test_truncations_report_a_stream_error(cut: int) -> None:
    data = pickle.dumps({"a": [1.5, "x" * 40, b"y" * 300]}, protocol=4)
    events = walk(data[: len(data) - cut])
    assert errors(events)


def test_stacked_pickles_are_all_walked() -> None:
    first = pickle.dumps({"magic": 1}, protocol=2)
    second = call_pickle("os", "system", "true", proto=2)
    third = pickle.dumps([1, 2], protocol=4)
    machine = PickleMachine(io.BytesIO(first + second + third))
    events = list(machine.walk())
    assert [e.index for e in events if isinstance(e, Stop)] == [0, 1, 2]
    assert imports(events) == ["os.system"]
    assert machine.stats.pickles == 3


def test_stacked_protocol0_pickle_after_stop_is_walked() -> None:
    data = pickle.dumps([1], protocol=2) + global0("os", "system", "true")
    events = walk(data)
    assert imports(events) == ["os.system"]
    assert len([e for e in events if isinstance(e, Stop)]) == 2


def test_plain_data_after_stop_is_fine() -> None:
    data = pickle.dumps({"a": 1}, protocol=4) + bytes(range(256)) * 4
    events = walk(data)
    assert not errors(events)
    assert not [e for e in events if isinstance(e, TrailingData)]


def test_opcodes_after_stop_that_break_are_reported_with_their_imports() -> None:
    tail = b"cos\nsystem\n(S'true'\ntR" + b"\xff"  # never reaches STOP
    events = walk(pickle.dumps(1, protocol=4) + tail)
    trailing = [e for e in events if isinstance(e, TrailingData)]
    assert trailing and trailing[0].imports == ("os.system",)


def test_persistent_ids_are_recorded_as_data() -> None:
    b = PickleBuilder(2).mark().str("storage").int(0).str("cpu").tuple().binpersid()
    b.persid0("legacy").tuple2().stop()
    events = walk(bytes(b))
    assert len([e for e in events if isinstance(e, Persistent)]) == 2
    assert not imports(events)


@pytest.mark.parametrize("opcode", ["ext1", "ext2", "ext4"])
def test_extension_codes_are_reported(opcode: str) -> None:
    b = PickleBuilder(2)
    getattr(b, opcode)(7)
    b.empty_tuple().reduce().stop()
    events = walk(bytes(b))
    assert [e.code for e in events if isinstance(e, Extension)] == [7]
    assert any(isinstance(e, Call) for e in events)


def test_big_strings_are_skipped_with_a_prefix() -> None:
    big = "A" * (3 << 20)
    data = pickle.dumps(("head", big, "tail"), protocol=4)
    machine = PickleMachine(io.BytesIO(data))
    events = list(machine.walk())
    result = events[-1].result  # type: ignore[union-attr]
    assert isinstance(result[1], Blob) and result[1].size == len(big)
    assert result[1].prefix.startswith(b"AAAA") and result[2] == "tail"
    assert machine.stats.bytes_skipped >= len(big)


def test_containers_keep_a_bounded_preview() -> None:
    data = pickle.dumps(list(range(100_000)), protocol=4)
    events = walk(data)
    assert len(events[-1].result) <= 64  # type: ignore[union-attr, arg-type]


def test_limit_on_opcodes() -> None:
    data = pickle.dumps(list(range(5000)), protocol=4)
    with pytest.raises(LimitExceeded):
        walk(data, Limits(max_pickle_ops=1000))


def test_limit_on_stack() -> None:
    data = b"\x80\x04" + b"N" * 5000 + b"."
    with pytest.raises(LimitExceeded):
        walk(data, Limits(max_pickle_stack=1000))


def test_limit_on_memo_objects() -> None:
    b = PickleBuilder(4).stack_global("mod", "K")
    for _ in range(50):
        b.dup().memoize()
    with pytest.raises(LimitExceeded):
        walk(bytes(b.stop()), Limits(max_pickle_memo=10))


def test_limit_reports_events_seen_before_it() -> None:
    data = call_pickle("os", "system", "true")[:-1] + b"N" * 5000 + b"."
    seen: list[Event] = []
    with pytest.raises(LimitExceeded):
        for ev in PickleMachine(io.BytesIO(data), Limits(max_pickle_stack=100)).walk():
            seen.append(ev)
    assert imports(seen) == ["os.system"]


def test_joblib_raw_arrays_are_skipped_and_walking_continues(tmp_path: Path) -> None:
    arrays = {
        "f": np.arange(1000, dtype="f8").reshape(10, 100),
        "s": np.array(["ab", "cde"]),
        "rec": np.zeros(3, dtype=[("a", "f4"), ("b", "i8")]),
        "fortran": np.asfortranarray(np.ones((3, 4), dtype="i2")),
        "scalar": np.array(7, dtype="u1"),
        "obj": np.array([1, "x", None], dtype=object),
        "dt": np.array(["2020-01-01"], dtype="M8[ns]"),
    }
    path = tmp_path / "a.joblib"
    joblib.dump(arrays, path)
    events = walk(path.read_bytes())
    assert not errors(events), errors(events)
    assert not [e for e in events if isinstance(e, TrailingData)]
    got = [e for e in events if isinstance(e, JoblibArray)]
    assert len(got) == len(arrays)
    assert sum(1 for e in got if e.object_pickle) == 1


def test_joblib_payload_after_an_array_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "a.joblib"
    joblib.dump(np.arange(50, dtype="f4"), path)
    events = walk(path.read_bytes() + call_pickle("os", "system", "true", proto=4))
    assert "os.system" in imports(events)


def test_joblib_payload_in_the_object_array_pickle_is_seen(tmp_path: Path) -> None:
    path = tmp_path / "a.joblib"
    joblib.dump({"o": np.array([1, "x"], dtype=object)}, path)
    data = path.read_bytes()
    marker = pickle.dumps(np.array([1, "x"], dtype=object), protocol=5)
    start = data.find(marker[:2], data.find(b"O8"))
    assert start > 0
    events = walk(data)
    assert [e for e in events if isinstance(e, JoblibArray) and e.object_pickle]


def test_joblib_compressed_is_a_plain_pickle_inside(tmp_path: Path) -> None:
    path = tmp_path / "c.joblib"
    joblib.dump({"w": np.arange(20.0)}, path, compress=3)
    inner = zlib.decompress(path.read_bytes())
    events = walk(inner)
    assert not errors(events)
    assert [e for e in events if isinstance(e, JoblibArray)]


def test_joblib_array_bytes_that_decode_as_opcodes_are_reported() -> None:
    # A polyglot: joblib reads these bytes as uint8 data, pickle.load would run them.
    payload = b"cos\nsystem\n(S'true'\ntR."
    wrapper = PickleBuilder(4).stack_global("joblib.numpy_pickle", "NumpyArrayWrapper")
    wrapper.empty_tuple().newobj().empty_dict().mark()
    wrapper.str("shape").const((len(payload),)).str("order").str("C").str("dtype")
    wrapper.call("numpy", "dtype", "u1", False, True)
    wrapper.const((3, "|", None, None, None, -1, -1, 0)).build()
    wrapper.setitems().build()
    data = bytes(wrapper) + payload + b"."
    events = walk(data)
    hidden = [e for e in events if isinstance(e, TrailingData)]
    assert hidden and hidden[0].context == "in joblib array data"
    assert hidden[0].imports == ("os.system",)
    assert not errors(events)


def test_joblib_wrapper_with_unknown_shape_is_a_stream_error() -> None:
    b = PickleBuilder(4).stack_global("joblib.numpy_pickle", "NumpyArrayWrapper")
    b.empty_tuple().newobj().empty_dict().str("shape").str("oops").setitem().build().stop()
    assert errors(walk(bytes(b)))


def test_explain_reads_like_python() -> None:
    lines = list(explain(io.BytesIO(call_pickle("os", "system", "echo hi"))))
    assert any("from os import system" in line for line in lines)
    assert any("_var0 = os.system('echo hi')" in line for line in lines)
    assert lines[-1].startswith("# ")


def test_explain_never_raises_on_garbage() -> None:
    lines = list(explain(io.BytesIO(b"\x80\x05\xff\xff")))
    assert any("stream broken" in line for line in lines)


def test_walk_of_a_region_reports_relative_offsets() -> None:
    inner = call_pickle("os", "system", "true")
    data = b"JUNK" * 10 + inner + b"MORE"
    machine = PickleMachine(io.BytesIO(data), start=40, end=40 + len(inner), stacked=False)
    events = list(machine.walk())
    imp = next(e for e in events if isinstance(e, Import))
    assert 0 < imp.offset < len(inner)


def test_memory_does_not_grow_with_opcodes() -> None:
    # Millions of memoized strings: the memo holds 8-byte codes, not string objects.
    data = pickle.dumps([f"s{i}" for i in range(300_000)], protocol=4)
    machine = PickleMachine(io.BytesIO(data))
    events = list(machine.walk())
    assert not errors(events)
    assert machine.stats.memo >= 300_000


# ---- property tests: random bytes and truncations never crash and finish quickly


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_never_raise(data: bytes) -> None:
    try:
        for _ in PickleMachine(io.BytesIO(data), Limits(max_pickle_ops=100_000)).walk():
            pass
    except ArtifactError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.binary(max_size=8))
def test_random_truncations_and_tails_never_raise(cut: int, tail: bytes) -> None:
    base = pickle.dumps({"a": SAMPLE_VALUES[:20], "b": [1.5] * 10}, protocol=cut % 6)
    data = base[: cut % (len(base) + 1)] + tail
    try:
        for _ in PickleMachine(io.BytesIO(data), Limits(max_pickle_ops=100_000)).walk():
            pass
    except ArtifactError:
        pass


SOUP = sorted(set(b"()tlde0a1s2uKNC\x8c\x94\x93hqRb\x81.\x85\x86\x87"))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(SOUP), max_size=60))
def test_random_opcode_soup_never_raises(ops: list[int]) -> None:
    data = b"\x80\x04" + bytes(ops)
    try:
        for _ in PickleMachine(io.BytesIO(data), Limits(max_pickle_ops=10_000)).walk():
            pass
    except ArtifactError:
        pass
