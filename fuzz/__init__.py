"""Coverage-guided fuzz harnesses for every parser the project owns (see ``fuzz/README.md``).

Each ``fuzz_<parser>.py`` exposes ``TestOneInput(data: bytes) -> None`` and imports no fuzzing
engine at module level, so the default test suite can replay committed seeds without atheris.
"""
