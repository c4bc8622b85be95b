"""Importers that turn other platforms' data exports into v1 activity events."""
