"""Who may read what (docs/access.md): accounts with roles, clearances and API tokens,
datasets released by classification level, and the hash-chained audit log of every read,
download and administrative action."""
