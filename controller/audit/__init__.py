"""The controller's tamper-evident log: what it records and how anyone verifies it.

    records      canonical event records (the leaves), session chaining
    errors       the exception tree
    keys         the controller's log key (Ed25519) and its origin
    checkpoints  signing checkpoints, refusing rollback at start, the file kept beside the store
    checkpointer the background task that signs under load, at session close and when idle
    evidence     evidence bundles and single-event proofs (export, JSON form)
    verify       verification of evidence against a pinned key; pure, pinpoints the first fault
    witness      mutual witnessing: check, mirror and cosign agents' logs; keep their cosignatures
    reconcile    an agent's witnessed log against the controller's session events for it

The rows live in the store (:mod:`controller.store.auditlog`, :mod:`controller.store.blobs`);
the hashing, proofs and signed notes are :mod:`tlog`'s.
"""
