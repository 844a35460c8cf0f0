"""A run's callbacks, one job each (see base.Callback)."""
