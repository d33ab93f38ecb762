"""Discord: a discord.py client with application commands on top of the platform-neutral bot."""
