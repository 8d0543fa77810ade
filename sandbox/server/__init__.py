"""Simulated platform servers: one HTTP app, a module per platform."""
