"""n8n-like automations service: webhook-triggered workflows calling the assistant."""
SERVICE = "automations"
