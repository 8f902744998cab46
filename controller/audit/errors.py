"""Exceptions of the controller's audit log.

    AuditError              base of everything raised here
    ├── BadRecord           bytes that are not a canonical event record
    ├── BadEvidence         an evidence bundle or proof file that does not parse
    ├── LogRolledBack       the store holds less than, or other than, the last signed checkpoint
    ├── ChainBroken         a session's or case's last record, as stored, is not the log's
    └── CheckpointRefused   a checkpoint would shrink or fork what was already signed
"""

from __future__ import annotations

from controller.errors import ControllerError


class AuditError(ControllerError):
    """Base of every error of the audit log."""


class BadRecord(AuditError):
    """Bytes are not a canonical event record."""


class BadEvidence(AuditError):
    """An evidence bundle or proof file does not parse."""


class LogRolledBack(AuditError):
    """The store's log is shorter than, or inconsistent with, a checkpoint already signed."""


class ChainBroken(AuditError):
    """A chain's head row names no leaf as recorded, or is gone while its records remain:
    a record linked from it would hide or fork the chain, so nothing is appended."""


class CheckpointRefused(AuditError):
    """Signing would state a size below, or a tree inconsistent with, a signed checkpoint."""
