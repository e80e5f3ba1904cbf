"""One router per resource: ops (health, readiness, metrics, console), customers, scoring, reviews."""
