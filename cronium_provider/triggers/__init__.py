"""Triggers of deferred Cronium tasks: they follow a run from the triggerer while the task holds no worker slot."""
