"""The parse child and process plumbing: a limited process reads the file, spares wait warm.

No database (no `db`, no SQLAlchemy): what runs in the parse child must not carry it, and
the child gets its work and hands back its answer through files and pipes. Imports only
`itemsheet.sheet`.
"""
