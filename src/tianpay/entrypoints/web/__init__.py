"""Shared pieces of the signed-in web pages (merchant portal, operator console).

``pages`` holds the session-or-redirect and CSRF-or-403 guard as one FastAPI dependency, cookies,
form reading and security headers; ``charts`` renders inline SVG charts that need no script.
"""
