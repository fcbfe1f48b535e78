"""Plain import logic: sniff, read, validate and diff item sheets (no Prefect, no FastAPI)."""
