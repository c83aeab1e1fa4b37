"""python -m pa_apps.assistant {serve,migrate,downgrade,sql,current} ..."""
from pa_apps.assistant.spec import SPEC
from pa_apps.common.cli import main

raise SystemExit(main(SPEC))
