"""The top floor: the only code that joins stages (train, merge, eval): quickstart, sweep."""
