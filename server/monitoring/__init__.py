"""Watching the network (docs/monitoring.md): completeness, timeliness and availability
from the catalog's hourly counts, alarms raised and cleared by rules, their delivery, the
collector's metrics and the dashboard."""
