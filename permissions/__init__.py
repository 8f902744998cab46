"""The trust kernel: scopes, signed statements, consent and the agent's decision.

Pure: no I/O, no clocks (time is a parameter), no grpc, no agent or controller.
"""

from permissions._errors import BadSignature, MalformedStatement, PermissionsError
from permissions.consent import (
    MAX_GRANT_SECONDS, NarrowingError, approve, deny, request_access, revoke,
    verify_access_request, verify_decision,
)
from permissions.durations import format_duration, parse_duration
from permissions.envelope import (
    Envelope, PrivateKey, PublicKey, Signature, digest, key_id, load_public_key, pae,
    public_key_bytes, sign, verify,
)
from permissions.evaluate import AgentTrust, Decision, Reason, evaluate, verify_grant
from permissions.scopes import SCOPES, parse_scopes
from permissions.statements import (
    ACCESS_REQUEST, DENIAL, GRANT, OPERATION, RECEIPT, REVOCATION, AccessRequest, Denial,
    Grant, Operation, Receipt, Revocation, decode_key, encode_key, peek,
)

__all__ = [
    "ACCESS_REQUEST", "DENIAL", "GRANT", "MAX_GRANT_SECONDS", "OPERATION", "RECEIPT",
    "REVOCATION", "SCOPES", "AccessRequest", "AgentTrust", "BadSignature", "Decision",
    "Denial", "Envelope", "Grant", "MalformedStatement", "NarrowingError", "Operation",
    "PermissionsError", "PrivateKey", "PublicKey", "Reason", "Receipt", "Revocation",
    "Signature", "approve", "decode_key", "deny", "digest", "encode_key", "evaluate",
    "key_id", "load_public_key", "pae", "parse_scopes", "peek", "public_key_bytes",
    "request_access", "revoke", "sign", "verify", "verify_access_request", "verify_decision",
    "verify_grant", "parse_duration", "format_duration",
]
