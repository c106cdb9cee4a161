"""The engine: containers, images, volumes, networks, events and state on disk.

Nothing here sees an HTTP request; errors are raised as :mod:`dockertw.errdefs` kinds.
"""
