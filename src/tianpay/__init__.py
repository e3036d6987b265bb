"""Tianpay: a third-party payment platform."""
