"""Adapters: the implementations of the ports (database, clock, ids, crypto, outbound HTTP)."""
