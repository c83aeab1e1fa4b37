#!/bin/sh
# Entrypoint of the upgrade-infra/postgres images (built by upgrade_infra.backends.compose.images).
#
# Like the official postgres image, in short:
# - an empty $PGDATA (default /var/lib/postgresql/data, the named volume) is initialised on first start:
#   superuser $POSTGRES_USER (default postgres) with password $POSTGRES_PASSWORD (or the content of
#   $POSTGRES_PASSWORD_FILE, e.g. a Compose secret), database $POSTGRES_DB (default $POSTGRES_USER),
#   UTF8 with locale C.UTF-8, then *.sql and *.sh of /docker-entrypoint-initdb.d/ run once;
# - network connections need the password (scram-sha-256, from any address: the Compose network),
#   the local socket inside the container trusts (`docker exec -u postgres CONTAINER psql`);
# - listens on 0.0.0.0:5432; PostgreSQL runs as the `postgres` user, never root;
# - `docker stop` sends SIGINT (fast shutdown: sessions ended, data safe).
# Any other command than `postgres ...` runs as given (e.g. `docker run --rm IMAGE pg_dump --version`).
set -eu

PGDATA="${PGDATA:-/var/lib/postgresql/data}"
export PGDATA

if [ "${1:-postgres}" != postgres ]; then
    exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /run/postgresql
    chown postgres:postgres "$PGDATA" /run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
        POSTGRES_PASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")"
    fi
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "upgrade-infra/postgres: the database is uninitialized and POSTGRES_PASSWORD is not set" >&2
        echo "  set POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) for the superuser" >&2
        exit 1
    fi
    user="${POSTGRES_USER:-postgres}"
    db="${POSTGRES_DB:-$user}"
    pwfile="$(mktemp)"
    printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"
    # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS: extra words for initdb, as in the official image
    # --no-sync: initdb's own fsync of every file costs seconds; one syncfs below makes the result durable
    initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 --no-sync ${POSTGRES_INITDB_ARGS:-} >/dev/null
    rm -f "$pwfile"
    {
        echo "host all all 0.0.0.0/0 scram-sha-256"
        echo "host all all ::/0 scram-sha-256"
    } >> "$PGDATA/pg_hba.conf"
    echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
    pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -k /run/postgresql" start >/dev/null
    if [ "$db" != postgres ]; then
        psql -h /run/postgresql -U "$user" -d postgres -v ON_ERROR_STOP=1 -q \
            -c "CREATE DATABASE \"$db\""
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sql) psql -h /run/postgresql -U "$user" -d "$db" -v ON_ERROR_STOP=1 -q -f "$f" ;;
            *.sh) . "$f" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    sync -f "$PGDATA"
    echo "upgrade-infra/postgres: initialised $PGDATA (user $user, database $db)"
fi

exec "$@" -D "$PGDATA"
