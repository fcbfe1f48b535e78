"""Import logic of the service, in sub-packages named by what their modules may do.

- `sheet`: pure; reads and judges a file's bytes. No database, no processes.
- `files`: where uploaded files are kept (a local path or an fsspec URL). No database.
- `sandbox`: the parse child and the plumbing of pre-started processes. No database.
- `jobs`: import jobs in the database; the caller owns every transaction.
- `downloads`: files written out (exports, rejected rows, the template); reads the
  database in read-only transactions of its own and writes nothing to it.
- `housekeeping`: retention and clean-up; opens and commits its own transactions.
- `runs`: the steps of a running import or undo, called by the flows; opens and commits
  its own transactions.

Each package imports only those above it in this list that its docstring names, and
nothing here imports Prefect, FastAPI or the service's entry points (`api`, `flows`,
`cli`, `orchestration`, `deployments`); `tests/itemsheet/test_layout.py` checks both.
"""
