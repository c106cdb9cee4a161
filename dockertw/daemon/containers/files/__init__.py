"""A container's filesystem: cp archives, the root seen by fd, diffs, upper-layer tars."""
