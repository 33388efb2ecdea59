"""Dependency audit: requirement facts (``scanners.requirements_scan``) looked up in OSV.

``osv`` is the bounded HTTP client, ``cvss`` the CVSS v3 base-score formula, ``audit`` the
report-level check, ``cli`` the ``deps`` command and the ``scan`` options. Nothing here runs pip,
``setup.py`` or a build backend: see ``docs/dependencies.md``.
"""
