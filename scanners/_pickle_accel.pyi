"""Types of the optional compiled skimmer (``scanners/_pickle_accel.c``)."""

from array import array

def skim(
    buf: bytes,
    i: int,
    limit: int,
    base: int,
    keep: int,
    memo: array[int],
    into_dict: bool,
    preview: int,
    /,
) -> tuple[int, int, str | bytes | None, int, bytes] | None: ...
