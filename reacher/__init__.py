"""Reacher: the shared pieces of the package (CLI, demo bringup, config and path helpers)."""
