"""Harness for running the stack in tests, demos and benchmarks.

* :class:`LocalCluster` - a throwaway PostgreSQL cluster (initdb + pg_ctl)
* :class:`Stack`        - databases, data dirs and service subprocesses of one stack
"""
from pa_apps.testing.cluster import LocalCluster
from pa_apps.testing.harness import PA_STACK_DIR, ServiceProcess, Stack, free_port

__all__ = ["LocalCluster", "PA_STACK_DIR", "ServiceProcess", "Stack", "free_port"]
