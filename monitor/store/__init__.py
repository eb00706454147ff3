"""The store: SQLAlchemy 2 tables and queries that return plain dataclasses.

SQLite is the embedded default; PostgreSQL is the production store. Every query here runs
on both, and one contract test suite checks that they behave alike.
"""
