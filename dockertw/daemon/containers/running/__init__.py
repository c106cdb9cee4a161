"""How a container runs: lifecycle, runc runs and execs, stdio, restarts and logs."""
