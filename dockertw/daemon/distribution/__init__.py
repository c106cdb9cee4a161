"""Pulls, pushes and logins over the Registry HTTP API v2: client, auth, pipelines."""
