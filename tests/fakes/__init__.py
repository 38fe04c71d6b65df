"""Test doubles of external services, speaking their real wire protocols."""
