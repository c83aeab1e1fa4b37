"""Service description used by the shared CLI."""
from pa_apps.assistant import SERVICE
from pa_apps.common.service import service_spec

SPEC = service_spec(SERVICE, serve_env=("PA_DATA_DIR",))
