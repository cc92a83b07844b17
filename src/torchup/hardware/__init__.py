"""Detect the accelerator: the probe chain and pure parsers of vendor tool output."""
