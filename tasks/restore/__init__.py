"""Restore: repair damaged photos (issue 27). The synthetic damage it trains on is `damage.py`."""
