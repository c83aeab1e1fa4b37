"""Code shared by both services (releases, CLI, migrations, web plumbing)."""
