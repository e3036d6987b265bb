"""The relational database adapter: tables, engine set-up, repositories and the unit of work."""
