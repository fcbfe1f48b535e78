"""Files the service writes out: item exports, an import's rejected rows, the template.

Reads the database only in read-only transactions of its own (`session_scope(write=False)`)
or in the caller's session, and never commits. Imports `itemsheet.sheet`, `itemsheet.files`,
`itemsheet.sandbox` and `itemsheet.jobs`.
"""
