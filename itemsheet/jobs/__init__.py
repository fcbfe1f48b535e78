"""Import jobs in the database: create, view, dispatch, review, undo, claim and finish.

Every function takes the caller's session and leaves the transaction to it: nothing here
calls `session_scope`, `commit` or `rollback`. Imports `itemsheet.sheet` and
`itemsheet.files`.
"""
