"""A sheet as bytes: sniff the format, read, find the header, validate, and the messages.

Pure functions of a file's bytes and the reading choices: nothing here touches the
database (no `db`, no SQLAlchemy) or imports another package of `itemsheet`.
"""
