"""The container toolkit: zip/tar/7z walking, single-stream decompression, bounded spools, the
tree budget and the ``ARC`` rules, shared by every scanner that opens a container.

Format scanners (``archive_scan``, ``torch_scan``, ``keras_scan``, ``numpy_scan``…) import this
package, never each other. Containers never analyse their members: each member is spooled
(bounded memory) and handed to ``ctx.dispatch`` (or a handler), so the engine sniffs and scans it
like a file. Member names are judged by ``scanners._paths.path_escape`` and never joined to a
filesystem path; nothing is extracted to disk.
"""

from __future__ import annotations

from scanners.containers.rules import (
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
    ARC011,
    ARC013,
    ARC_RULES,
)
from scanners.containers.sevenzip import walk_7z
from scanners.containers.spool import (
    PEEK_BYTES,
    MemberHandler,
    Spool,
    TreeBudget,
    Want,
    bounded_reads,
    handoff,
    member_error,
    tree_budget,
)
from scanners.containers.streams import COMPRESSED_KINDS, decompressed, inner_name
from scanners.containers.tars import walk_tar
from scanners.containers.torch_legacy import ELEMENT_SIZE, legacy_member
from scanners.containers.zips import walk_zip

__all__ = [
    "ARC001",
    "ARC002",
    "ARC003",
    "ARC004",
    "ARC005",
    "ARC006",
    "ARC007",
    "ARC008",
    "ARC009",
    "ARC010",
    "ARC011",
    "ARC013",
    "ARC_RULES",
    "COMPRESSED_KINDS",
    "ELEMENT_SIZE",
    "PEEK_BYTES",
    "MemberHandler",
    "Spool",
    "TreeBudget",
    "Want",
    "bounded_reads",
    "decompressed",
    "handoff",
    "inner_name",
    "legacy_member",
    "member_error",
    "tree_budget",
    "walk_7z",
    "walk_tar",
    "walk_zip",
]
