"""``tianpay bench …``: the benchmarks of DESIGN.md §13 and docs/performance.md.

Each bench runs on PostgreSQL, in scratch databases it creates on the server of
``TIANPAY_DATABASE_URL`` (else the local one) and drops afterwards; it returns its figures as one
JSON-able dict and never asserts a target: the figures are reported, and the lead judges them.
"""
