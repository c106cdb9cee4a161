"""Version-dependent shapes: request bodies and answers as each API version has them.

The engine answers in one shape; these functions add what older versions had, drop
what newer versions lost, and read request fields only from the version that brought
them (moby's ``compat`` wrappers and router gates).  Each gate is listed in
docs/api-versions.md with its test.
"""
