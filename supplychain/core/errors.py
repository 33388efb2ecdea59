"""One exception hierarchy; only ``cli.main`` (and later the server) turns it into exit codes."""

from __future__ import annotations


class SupplyChainError(Exception):
    """Base of every error this project raises on purpose."""

    def diagnostics(self) -> str:
        """Text a user can act on; the CLI prints it as a one-line error."""
        return str(self)


class ConfigError(SupplyChainError):
    """A bad policy file, flag or argument (exit code 2)."""


class ArtifactError(SupplyChainError):
    """The artifact is malformed. The engine turns it into a ``GEN001`` finding, never a skip.

    ``offset`` is the byte offset in the stream where the problem was seen, when known.
    """

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class LimitExceeded(ArtifactError):
    """A resource cap in ``Limits`` was hit. The engine turns it into a ``GEN002`` finding."""


class MissingDependency(SupplyChainError):
    """An optional library a scanner needs is not installed; the outcome is a skip with reason."""
