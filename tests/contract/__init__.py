"""Black-box acceptance tests of the items sheet contract."""
