"""Reference "personal assistant" stack used by upgrade-infra demos and tests.

Two services share this package:

* ``pa_apps.assistant``   - Letta-like assistant (users, agents, memories, chats)
* ``pa_apps.automations`` - n8n-like webhook workflows that call the assistant

plus ``pa_apps.seed`` which fills both databases with realistic data.
Release-specific behaviour lives in :mod:`pa_apps.common.releases`.
"""
