"""Bundled data: the matched safe/unsafe prompt pairs and their data card."""
