"""The holder: one process that keeps every container running while the daemon is
away (``--live-restore``), and the daemon's side of it."""
