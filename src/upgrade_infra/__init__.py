"""upgrade-infra: upgrade infrastructure for self-hosted multi-service stacks."""

__version__ = "0.1.0"
