"""python -m pa_apps.automations {serve,migrate,downgrade,sql,current} ..."""
from pa_apps.automations.spec import SPEC
from pa_apps.common.cli import main

raise SystemExit(main(SPEC))
