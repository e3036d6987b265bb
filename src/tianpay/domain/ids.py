"""Id prefixes for every resource, so an id names its kind wherever it appears (logs, APIs, URLs).

Ids are generated at the edge (adapters); the domain only knows their shape.
"""

from __future__ import annotations

MERCHANT = "mch"
KEY = "key"
PAYMENT = "pay"
ATTEMPT = "att"
REFUND = "rfd"
EVENT = "evt"
WEBHOOK_ATTEMPT = "wha"
REQUEST = "req"
MEMBER = "mbr"
CARD_BINDING = "cbd"
MANDATE = "mdt"
DEBIT_SCHEDULE = "dsc"
PAYOUT = "pyo"
SETTLEMENT = "stl"
ALERT = "alr"
SMS_CODE = "smc"
POS_TRANSACTION = "pos"
MERCHANT_USER = "mus"
PAYOUT_BATCH = "pob"
