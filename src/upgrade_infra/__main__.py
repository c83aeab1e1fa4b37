from upgrade_infra.cli import entry

entry()
