"""The OCI runtime adapter: the ``runc`` command line, bundles and mounts."""
