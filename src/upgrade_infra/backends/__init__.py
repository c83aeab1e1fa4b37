"""Environments: a backend-neutral interface and a registry of backends keyed by their YAML name."""

from upgrade_infra.backends.interface import Environment, ServiceStatus
from upgrade_infra.backends.registry import BACKENDS, open_environment, register_backend

__all__ = ["BACKENDS", "Environment", "ServiceStatus", "open_environment", "register_backend"]
