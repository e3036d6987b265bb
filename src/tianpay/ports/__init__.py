"""Protocols the services need from the outside world, and the plain data types that cross them.

Services depend on these shapes only; adapters (database, HTTP, clock) implement them and the
composition root wires them together.
"""
