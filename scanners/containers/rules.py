"""The ``ARC`` rules: what a container itself does wrong, whoever walks it."""

from __future__ import annotations

from supplychain.core.model import Rule, Severity
from supplychain.core.rules import make_rule

_ZIP_REFS = (
    "https://github.com/mmaitre314/picklescan/security/advisories",
    "https://jfrog.com/blog/unveiling-3-zero-day-vulnerabilities-in-picklescan/",
)

ARC001 = make_rule(
    "ARC001",
    "Unsafe member path",
    Severity.HIGH,
    "An archive member is named with a parent-directory step (`..`), an absolute path, a drive "
    "letter or a NUL byte. Extracting the archive can write outside the target directory "
    "(zip-slip / tar-slip) and overwrite code or configuration that runs later.",
    "Do not extract the archive with a tool that honours such names; rebuild it with plain "
    "relative member names.",
    cwe=22,
)
ARC002 = make_rule(
    "ARC002",
    "Link or special-file member",
    Severity.HIGH,
    "An archive member is a symbolic link, hard link or device/FIFO node. On extraction a link "
    "can make later members (or the loader) read or write files outside the archive, such as "
    "credentials or startup scripts; device nodes have no place in a model archive.",
    "Replace links by the files they point to, and remove special files.",
    cwe=59,
)
ARC003 = make_rule(
    "ARC003",
    "Zip local/central file name mismatch",
    Severity.HIGH,
    "A member's local header names a different file than its central-directory entry. PyTorch "
    "trusts the central directory and loads the member, while Python's zipfile refuses it, so "
    "scanners built on zipfile skipped the payload (CVE-2025-1944).",
    "Treat the archive as hostile; rebuild it from trusted sources.",
    cwe=436,
    references=("https://nvd.nist.gov/vuln/detail/CVE-2025-1944", *_ZIP_REFS),
)
ARC004 = make_rule(
    "ARC004",
    "Unusual or inconsistent zip flag bits",
    Severity.MEDIUM,
    "A member sets general-purpose flag bits that ordinary writers never use (patched data, "
    "strong encryption, reserved bits), or its local and central flags disagree. Flipped flag "
    "bits made zipfile-based scanners refuse members that other loaders still read "
    "(CVE-2025-1945).",
    "Rebuild the archive with a standard tool (torch.save, numpy.savez, zip).",
    cwe=436,
    references=("https://nvd.nist.gov/vuln/detail/CVE-2025-1945", *_ZIP_REFS),
)
ARC005 = make_rule(
    "ARC005",
    "Encrypted member",
    Severity.HIGH,
    "A member (or the whole archive) is encrypted, so its content cannot be analysed. Encryption "
    "is a known way to carry a payload past scanners; the content is never reported as clean.",
    "Obtain an unencrypted copy from a trusted source and scan that.",
    cwe=693,
)
ARC006 = make_rule(
    "ARC006",
    "Zip CRC mismatch",
    Severity.MEDIUM,
    "A member's CRC-32 does not match its content. PyTorch ignores CRCs, so a tampered pickle "
    "still loads, while zipfile-based scanners raised and skipped it (CVE-2025-10156). A stored "
    "CRC of zero can be legitimate (torch.save with CRC computation disabled) and is reported at "
    "low severity.",
    "Verify the file's digest against the publisher's; re-download it.",
    cwe=354,
    references=("https://nvd.nist.gov/vuln/detail/CVE-2025-10156", *_ZIP_REFS),
)
ARC007 = make_rule(
    "ARC007",
    "Duplicate member names",
    Severity.HIGH,
    "Two members share a name. Loaders disagree on which copy wins (first, last, binary-search "
    "order), so a scanner that reads one copy can be shown a benign member while the loader "
    "reads the other. Every copy is scanned here.",
    "Rebuild the archive so each name appears once.",
    cwe=436,
)
ARC008 = make_rule(
    "ARC008",
    "Data outside the archive structure",
    Severity.MEDIUM,
    "Bytes sit before the first member (a prefixed or polyglot file: e.g. a pickle that is also a "
    "zip) or after the end of the archive. Different loaders read different parts of such a "
    "file; the hidden part is analysed separately when it can be.",
    "Rebuild the archive without extra data.",
    cwe=436,
)
ARC009 = make_rule(
    "ARC009",
    "Inconsistent archive metadata",
    Severity.MEDIUM,
    "The archive's own bookkeeping disagrees with itself (entry counts, compression methods, "
    "declared vs actual sizes, data past the end of the file). Parsers resolve such conflicts "
    "differently, which is how scanner/loader confusion attacks work.",
    "Rebuild the archive with a standard tool.",
    cwe=20,
)
ARC010 = make_rule(
    "ARC010",
    "Overlapping members",
    Severity.HIGH,
    "Two members' data ranges overlap. Overlap is the core of non-recursive zip bombs (one "
    "compressed kernel referenced many times) and lets one set of bytes appear under two names.",
    "Do not extract the archive; treat it as hostile.",
    cwe=409,
)
ARC011 = make_rule(
    "ARC011",
    "Pickle where raw data is expected",
    Severity.MEDIUM,
    "A tensor storage blob (raw numbers that the loader never unpickles) starts with a complete "
    "pickle. Nothing legitimate writes that; it is a stash for a payload that another stage "
    "loads. The pickle is analysed as its own member.",
    "Rebuild the checkpoint from trusted code (torch.save / safetensors).",
    cwe=506,
)
ARC013 = make_rule(
    "ARC013",
    "Unparseable legacy torch record",
    Severity.HIGH,
    "A legacy torch checkpoint does not follow the layout torch reads: a tar checkpoint's "
    "storages/tensors member (pickle header, then pickles interleaved with raw storage bytes), or "
    "a pre-1.6 stream (five pickles, then one raw record per storage key whose size the "
    "persistent ids declare). Some of its bytes could not be placed; they are analysed as "
    "potential pickles, and the file is not treated as clean.",
    "Convert the checkpoint to safetensors in an isolated environment, or discard it.",
    cwe=20,
)

ARC_RULES: tuple[Rule, ...] = (
    ARC001,
    ARC002,
    ARC003,
    ARC004,
    ARC005,
    ARC006,
    ARC007,
    ARC008,
    ARC009,
    ARC010,
)

"""Every rule a zip/tar/7z walk can emit (``ARC011``/``ARC013`` come from torch layouts)."""
