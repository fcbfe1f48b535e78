"""The contract suite's fixtures, shared by its modules: they live with the CLI runner in
`test_cli_contract.py`."""

from tests.contract.test_cli_contract import (  # noqa: F401  (fixtures, found by name)
    backend,
    data_dir,
    importer,
    prefect_env,
)
