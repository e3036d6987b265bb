"""Use cases as plain functions over ports: each opens a unit of work, applies the domain's rules and
commits. Services never import adapters, channels or entry points."""
