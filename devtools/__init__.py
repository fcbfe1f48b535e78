"""Development tools shared by the tests and the benchmarks, never by the service.

`devtools.postgres` starts a throwaway PostgreSQL cluster; `devtools.stack` starts
`importer up` as a user would, on free ports and a private data dir. The product
(`api`, `cli`, `db`, `deployments`, `flows`, `itemsheet`, `orchestration`, `settings.py`)
never imports this package, and the wheel does not ship it.
"""
