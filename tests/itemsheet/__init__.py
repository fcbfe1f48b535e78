"""Tests of the itemsheet package."""
