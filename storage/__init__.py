"""tuneup's own database: jobs, datasets and the notification outbox (SQLModel + Alembic)."""
