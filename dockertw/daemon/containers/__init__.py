"""Containers: records, names, validation, persistence and the service the API calls."""
