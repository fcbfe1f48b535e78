"""API-side services: plain functions over a session, with no FastAPI imports."""
