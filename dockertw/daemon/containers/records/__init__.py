"""What a container is: its record, store, names, configuration and mount points."""
