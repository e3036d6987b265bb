"""Simulated banks for Tianpay: independent institutions with their own books and protocols."""
