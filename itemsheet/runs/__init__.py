"""The steps of a running import, undo or reimport, as the flows call them.

Opens and commits its own transactions (one per batch, per step), so a step's work is
kept when a later one fails. Imports `itemsheet.sheet`, `itemsheet.files`,
`itemsheet.sandbox` and `itemsheet.jobs`.
"""
