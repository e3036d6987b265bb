"""Entry points: the merchant API, pages, the worker, the POS front and the CLI."""
