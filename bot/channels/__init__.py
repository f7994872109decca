"""Custom Rasa input channels of the intake bot (referenced from bot/credentials.yml by class path)."""
