"""Provenance rules (``PRV1xx``): bytes against the publisher's commit, a lock file, a signature.

``PRV001``–``PRV004`` are the shard-index report check (``supplychain.checks``); provenance starts
at ``PRV101`` so the two families never collide.
"""

from __future__ import annotations

from supplychain.core.model import Rule, Severity
from supplychain.core.rules import make_rule

PRV101 = make_rule(
    "PRV101",
    "File differs from the published or locked digest",
    Severity.CRITICAL,
    "The file's content hash is not the one the source records (the Hub commit's git blob sha1 or "
    "LFS sha256, the lock file's sha256, or the cache blob it names). Someone changed the bytes "
    "after the publisher released them: whatever the scanners say, this is not the file that was "
    "reviewed upstream.",
    "Delete the local copy and download it again pinned to the commit; investigate who changed it.",
    cwe=494,
)
PRV102 = make_rule(
    "PRV102",
    "File of the source is missing locally",
    Severity.HIGH,
    "The commit or lock lists a file that is not in the directory. A loader given the repo id "
    "fetches it from the network at load time, where nothing here checked it; or the model is "
    "incomplete.",
    "Download the complete snapshot pinned to the commit and scan it again.",
)
PRV103 = make_rule(
    "PRV103",
    "Extra local file not in the source",
    Severity.HIGH,
    "A file in the directory is not part of the commit or lock. That is where a dropped-in payload "
    "lives: loaders pick up extra weights, code (``trust_remote_code``) or configs by name.",
    "Remove files that are not part of the release, or publish them upstream and re-pin.",
    cwe=494,
)
PRV104 = make_rule(
    "PRV104",
    "Git LFS pointer instead of content",
    Severity.HIGH,
    "The file is a Git LFS pointer, not the object it names: the checkout skipped ``git lfs "
    "pull``. Nothing of the real weights was scanned or verified, and a loader fails or fetches "
    "the object later, unchecked.",
    "Run ``git lfs pull`` (or download through the Hub client) and scan again.",
)
PRV105 = make_rule(
    "PRV105",
    "Revision is a branch or tag, not a commit",
    Severity.MEDIUM,
    "The revision was given as a moving name. It was resolved to the commit in the evidence, but "
    "the next download may get other bytes. Pin the commit so what was verified is what loads.",
    "Pass the 40-hex commit in the evidence as ``revision=`` everywhere the model is loaded.",
)
PRV106 = make_rule(
    "PRV106",
    "Could not verify against the source",
    Severity.HIGH,
    "The Hub (or a mirror) could not be asked, refused, or answered something malformed: "
    "network error, timeout, 401/403/404, rate limit, bad JSON, an unreadable lock file or cache "
    "tree. Could not verify is never verified, so this fails the gate.",
    "Check the repo id, revision, token (``HF_TOKEN``) and endpoint (``HF_ENDPOINT``), then retry.",
)
PRV107 = make_rule(
    "PRV107",
    "Repository access facts",
    Severity.INFO,
    "The Hub says the repo is private, gated or disabled. Not a problem by itself; recorded so a "
    "reviewer knows who can see and change the source.",
    "None needed; a disabled repo deserves a look at why it was disabled.",
)
PRV108 = make_rule(
    "PRV108",
    "Hugging Face's scanners flag a file",
    Severity.HIGH,
    "Corroborating evidence: the Hub's own scan marks the file ``unsafe`` (HIGH) or ``caution`` "
    "(MEDIUM; HF marks most pickles so). It never clears a file our scanners flag.",
    "Read HF's and our findings for the file; prefer a safetensors release.",
)
PRV109 = make_rule(
    "PRV109",
    "Hugging Face's scan status is unknown",
    Severity.LOW,
    "``scansDone`` is false or the Hub gave no scan status: that is no signal, never clean.",
    "Rely on this tool's scan; require HF's scan in policy if you need the second opinion.",
)
PRV110 = make_rule(
    "PRV110",
    "Repository owner is a near-miss of a well-known publisher",
    Severity.MEDIUM,
    "The owner name is one edit or one look-alike character away from a major model publisher "
    "(typosquatting: ``meta-llama`` vs ``meta-llarna``). Models under such names are a known way "
    "to get malicious weights loaded.",
    "Check the exact owner name on the publisher's own site before using this model.",
    cwe=1007,
)
PRV111 = make_rule(
    "PRV111",
    "Resolved commit is much newer than the repository",
    Severity.LOW,
    "The commit was made in the last days of a repo with a long history: a fresh change to an "
    "established model is how a hijacked account ships a payload.",
    "Compare the change with the previous commit before adopting it, or pin an older commit.",
)
PRV112 = make_rule(
    "PRV112",
    "Cache blob does not match its content-addressed name",
    Severity.CRITICAL,
    "Hugging Face cache blobs are named by their sha256 (LFS) or git blob sha1. A blob whose "
    "content hashes to something else was changed in the cache after download.",
    "Delete the repo from the cache (``hf cache delete``) and download it again.",
    cwe=494,
)
PRV113 = make_rule(
    "PRV113",
    "File could not be verified",
    Severity.HIGH,
    "The file could not be hashed or the source gives no digest to compare with (no blob id, "
    "an unreadable file, a snapshot entry that is neither a link nor a regular file).",
    "Re-download the file and verify again; report a source without digests.",
)
PRV114 = make_rule(
    "PRV114",
    "Cache snapshot has no cached tree",
    Severity.LOW,
    "The blob names prove each file's content, but without ``trees/<commit>.json`` the file set "
    "of the commit is unknown offline: missing or extra files cannot be told.",
    "Verify online with ``--hf ORG/NAME --revision <commit>`` for a full check.",
)
PRV115 = make_rule(
    "PRV115",
    "Model signature is valid",
    Severity.INFO,
    "An OpenSSF model-signing bundle signs every file here and verifies with the given key or "
    "certificate chain.",
    "None.",
)
PRV116 = make_rule(
    "PRV116",
    "Model signature is invalid",
    Severity.CRITICAL,
    "The model-signing bundle does not verify: a signed file changed, the signature does not "
    "match the key or chain, or the bundle is malformed.",
    "Do not use the model; get it again from the signer.",
    cwe=347,
)
PRV117 = make_rule(
    "PRV117",
    "Model is not signed but a signature is required",
    Severity.HIGH,
    "Policy (or ``--require-signature``) demands a model-signing bundle and none was found, or "
    "it could not be checked (``supplychain[signing]`` missing).",
    "Ask the publisher for a signed release, or install ``supplychain[signing]``.",
    cwe=347,
)
PRV118 = make_rule(
    "PRV118",
    "File not covered by the signature",
    Severity.HIGH,
    "The file is present but the signature's manifest does not list it: a file added after "
    "signing, which a loader may still pick up.",
    "Remove the file or have the release signed again including it.",
    cwe=347,
)
PRV119 = make_rule(
    "PRV119",
    "Signature and Hub disagree on a file's digest",
    Severity.CRITICAL,
    "The signed manifest's sha256 for a file differs from the Hub's LFS sha256 for the same "
    "path: the signed model and the published model are different artifacts.",
    "Find out which release is genuine before using either.",
    cwe=494,
)

ALL_RULES: tuple[Rule, ...] = (
    PRV101,
    PRV102,
    PRV103,
    PRV104,
    PRV105,
    PRV106,
    PRV107,
    PRV108,
    PRV109,
    PRV110,
    PRV111,
    PRV112,
    PRV113,
    PRV114,
    PRV115,
    PRV116,
    PRV117,
    PRV118,
    PRV119,
)
"""Every provenance rule, for the rule catalogue and policy rule-id checks."""
