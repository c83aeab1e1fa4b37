"""upgrade-infra: upgrade infrastructure for self-hosted multi-service stacks."""

import logging

__version__ = "0.1.0"

# The library logs warnings (e.g. a staging service that cannot run as the unprivileged user) to the
# "upgrade_infra" logger and prints nothing itself: the CLI shows them on stderr; in a runbook they
# stay out of the executed notebook (no machine paths on the site) unless the caller adds a handler.
logging.getLogger("upgrade_infra").addHandler(logging.NullHandler())
