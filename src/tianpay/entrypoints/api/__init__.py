"""The merchant API (``/v1``): signed JSON over HTTP, one error envelope, idempotent writes."""
