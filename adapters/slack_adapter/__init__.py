"""Slack: slack-bolt AsyncApp (Socket Mode or HTTP) on top of the platform-neutral bot."""
