from pa_apps.common.alembic_env import run

run()
