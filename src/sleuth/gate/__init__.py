"""``sleuth gate``: benchmark history, soft-to-hard graduation, budgets, regressions and change points.

Modules: :mod:`.formats` (parsers of benchmark output), :mod:`.ingest` (files and CI artifact trees),
:mod:`.store` (SQLite / PostgreSQL through SQLAlchemy, or a directory of JSON files), :mod:`.robust`
(order statistics, CV bound, Benjamini-Hochberg, the run-level shift test), :mod:`.graduate`, :mod:`.policy`,
:mod:`.checks`, :mod:`.baseline`, :mod:`.changepoint` and :mod:`.render` (markdown, JUnit).
"""
