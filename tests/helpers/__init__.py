"""Support for the project's tests: real servers and fixtures that stand in for remote services."""
