"""Helpers the test folders share (importable as `support`: pyproject's pytest `pythonpath` lists tests/)."""
