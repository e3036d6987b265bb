"""The pure core of Tianpay: values, rules and lifecycles with no I/O, no clock and no id generation.

Everything here imports only the standard library, so it can be tested exhaustively and reused by
every service without dragging a database or an HTTP client along.
"""
