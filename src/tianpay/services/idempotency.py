"""Idempotent merchant writes: a repeated request gets the first response, a changed one a 409.

The merchant's own number (``out_trade_no``, ``out_refund_no``, ``out_payout_no``) is the key. The
record is claimed, the resource created and the response stored in ONE unit of work, so a crash
cannot leave a resource without its record (or the reverse), and the key's primary key makes
concurrent duplicates end with exactly one resource. Housekeeping deletes records past their retention
(docs/worker.md "Housekeeping"); from then on the resource's own unique number refuses a second one,
and ``taken_by`` turns that refusal into ``IdempotencyRecordExpired`` naming the resource.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tianpay.domain.errors import Conflict, DomainError, IdempotencyConflict, IdempotencyRecordExpired
from tianpay.ports.idempotency import IdempotencyRecord
from tianpay.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

JsonObject = Mapping[str, Any]
# What the caller's ``create`` returns: the HTTP status of the first answer and its JSON body.
Created = tuple[int, JsonObject]
# The id of the resource already made under the key, read in a fresh unit of work (None: there is none).
TakenBy = Callable[[UnitOfWork], str | None]


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The answer to an idempotent write; ``replayed`` is True when it is a stored first answer."""

    status_code: int
    body: JsonObject
    replayed: bool


def request_hash(payload: JsonObject) -> str:
    """SHA-256 of the canonical JSON of a request (keys sorted, no spaces): equal bodies, equal hash.

    Hash the validated request model (``model.model_dump(mode="json")``) rather than the raw bytes,
    so that key order and whitespace do not make two equal requests look different.
    """
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def run_idempotent(
    uow_factory: UnitOfWorkFactory,
    *,
    merchant_id: str,
    scope: str,
    key: str,
    request_hash: str,
    create: Callable[[UnitOfWork], Created],
    param: str | None = None,
    taken_by: TakenBy | None = None,
) -> StoredResponse:
    """Runs ``create`` once per (merchant, scope, key) and stores its answer in the same transaction.

    - first time: claims the key, calls ``create(uow)`` (which writes the resource through ``uow``
      and returns ``(status_code, body)`` without committing), stores the answer, commits, and
      returns it with ``replayed=False``;
    - same key and same ``request_hash``: returns the stored answer (same status, same body) with
      ``replayed=True`` and does not call ``create``;
    - same key, different hash: raises ``IdempotencyConflict`` (HTTP 409 ``idempotency_conflict``,
      ``param`` naming the merchant's field, e.g. ``"out_trade_no"``).

    If ``create`` raises, nothing is stored and the key stays free, so a request refused for a bad
    field can be corrected and sent again with the same number. When the key's record was purged by
    housekeeping, the claim succeeds again and ``create`` runs into the resource's own uniqueness (or
    into any rule the old resource now breaks, such as a refund that no longer fits): if ``taken_by``
    then finds a resource under the key, ``IdempotencyRecordExpired`` (409) names it instead. It is
    asked only after a refusal, so a new request pays nothing for it. ``scope`` separates key spaces
    (``"payments"``, ``"refunds"``, ``"payouts"``); ``key`` is at most 80 characters.

    Example (in a payments service)::

        return run_idempotent(
            uow_factory, merchant_id=m, scope="payments", key=out_trade_no,
            request_hash=request_hash(body.model_dump(mode="json")), param="out_trade_no",
            create=lambda uow: (201, _insert_payment(uow, ...)),
        )
    """
    try:
        with uow_factory() as uow:
            # The claim comes first and the record is read only when the claim fails: most requests are
            # new, and for them the claim is the only statement idempotency costs. A failed claim has
            # waited for the transaction holding the key to end (PostgreSQL's ON CONFLICT waits on the
            # conflicting row; SQLite's BEGIN IMMEDIATE lets one writer in at a time), so the read that
            # follows sees that transaction's committed record.
            if uow.idempotency.claim(merchant_id, scope, key, request_hash):
                status_code, body = create(uow)
                # The body is stored as text and read back, so the first answer and every replay are the
                # same JSON (no tuples, enums or datetimes that would serialise differently later).
                text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
                uow.idempotency.complete(merchant_id, scope, key, status_code, text)
                uow.commit()
                return StoredResponse(status_code, json.loads(text), replayed=False)
            record = uow.idempotency.get(merchant_id, scope, key)
    except DomainError as refused:
        # The unit of work has rolled back (on PostgreSQL a failed insert aborts its transaction), so
        # the look-up runs in a fresh one.
        _refuse_if_taken(uow_factory, taken_by, key, param, refused)
        raise
    if record is None:
        # The claim failed on a committed record that was gone a moment later: housekeeping purged it
        # in between. Rare enough to answer as a retryable conflict; the retry meets ``taken_by``.
        raise Conflict("a concurrent request with the same key did not finish; retry", param=param)
    return _replay(record, request_hash, param)


def _refuse_if_taken(
    uow_factory: UnitOfWorkFactory, taken_by: TakenBy | None, key: str, param: str | None, refused: DomainError
) -> None:
    """Raises IdempotencyRecordExpired when a resource already holds the key whose claim was refused."""
    if taken_by is None:
        return
    with uow_factory() as uow:
        resource_id = taken_by(uow)
    if resource_id is None:
        return
    raise IdempotencyRecordExpired(
        f"{param or 'this key'} {key!r} already names {resource_id}, whose first answer is no longer kept: "
        f"read {resource_id} instead of sending the request again",
        param=param,
    ) from refused


def _replay(record: IdempotencyRecord, request_hash: str, param: str | None) -> StoredResponse:
    if record.request_hash != request_hash:
        raise IdempotencyConflict(
            f"{param or 'this key'} {record.key!r} was already used with a different request", param=param
        )
    return StoredResponse(record.status_code, json.loads(record.response_body), replayed=True)
