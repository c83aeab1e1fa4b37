"""Letta-like assistant service: users, agents, memories, conversations."""
SERVICE = "assistant"
