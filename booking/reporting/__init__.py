"""Provincial management information (docs/metrics.md) and open slot publishing (SMART Scheduling Links).

Summary tables are filled incrementally by a Celery beat task (``aggregate``); pages, exports and the
analysts' API read only those tables (``selectors``), never the raw slots on page load.
"""
