"""Connector core: one HTTP session, authenticators, stream declarations, landing, loader."""
