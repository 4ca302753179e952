"""Hypothesis profiles: `ci` (the default: a fixed, derandomised budget that keeps `make test`
short) and `fuzz` (`make fuzz`: many more examples, random seeds)."""

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=12, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")
