"""Alembic revisions of the SQL queue's tables, on their own branch.

Add ``pyramid_sendmail.queue:migrations`` to the application's
``version_locations`` and run ``alembic upgrade pyramid_sendmail@head``; see
the SQL queue's documentation. Each revision is frozen: it never imports the
current :mod:`~pyramid_sendmail.queue.sql_schema`.
"""

__all__: list[str] = []
