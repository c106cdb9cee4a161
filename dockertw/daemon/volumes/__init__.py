"""Volumes: the local driver's store and the service the API and containers use."""
