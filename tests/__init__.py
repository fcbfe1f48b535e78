"""Tests of the item importer."""
