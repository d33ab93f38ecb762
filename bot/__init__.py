"""tuneup's platform-neutral core. Nothing here imports slack_bolt or discord."""
