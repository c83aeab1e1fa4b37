"""Service description used by the shared CLI."""
from pa_apps.automations import SERVICE
from pa_apps.common.service import service_spec

SPEC = service_spec(SERVICE, serve_env=("PA_SECRET_KEY", "ASSISTANT_URL"))
