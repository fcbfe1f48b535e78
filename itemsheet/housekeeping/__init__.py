"""Clean-up run on a schedule: retention of files, row errors and before-images, leftovers.

Opens and commits its own transactions, a short one per piece of work. Imports
`itemsheet.sheet` and `itemsheet.files`.
"""
