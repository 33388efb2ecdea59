"""Provenance: verify every byte against a Hub commit, a lock file, the HF cache and signatures.

Modules: ``hub`` (one Hub call → commit + digests), ``cache`` (offline HF cache snapshots),
``lockfile`` (``supplychain lock``), ``signing`` (model-signing bundles), ``identity``
(near-miss publishers as data), ``manifest`` (the comparison), ``verify`` (orchestration),
``rules`` (``PRV1xx``). See docs/provenance.md.
"""
