"""Cronium records: typed models, the file record source and validation."""
