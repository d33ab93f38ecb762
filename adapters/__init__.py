"""Thin platform adapters: translate native payloads to Commands and Replies back."""
