# Sourced by .ci/run: a throwaway PostgreSQL on 127.0.0.1 for the registry tests that need a real server.
# Exports LORAFLOW_TEST_POSTGRES_URL; the server and its data directory go away when the shell exits.
start_postgres() {
    local bin port
    # a free port: a fixed one is shared by every session on a shared machine
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    fi
    PG_DATA=$(mktemp -d /tmp/loraflow-pg.XXXXXX)
    local as=()
    if [ "$(id -u)" = 0 ]; then  # PostgreSQL refuses to run as root
        chown postgres "$PG_DATA"
        as=(runuser -u postgres --)
    fi
    "${as[@]}" "$bin/initdb" -D "$PG_DATA" -A trust -U postgres >/dev/null
    "${as[@]}" "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w \
        -o "-p $port -k $PG_DATA -c listen_addresses=127.0.0.1" start >/dev/null
    PG_STOP=("${as[@]}" "$bin/pg_ctl" -D "$PG_DATA" -m fast stop)
    export LORAFLOW_TEST_POSTGRES_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
}

stop_postgres() {
    if [ -n "${PG_DATA:-}" ]; then
        "${PG_STOP[@]}" >/dev/null 2>&1 || true
        rm -rf "$PG_DATA"
    fi
}
