# Shared steps of scripts/test and scripts/run (sourced, not executed).
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

step() { printf '\n== %s ==\n' "$*"; }

ensure_venv() {
    local extra="${1:-}"
    if [ ! -x "$VENV/bin/python" ]; then
        step "creating virtualenv $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    # Reinstall only when pyproject.toml (or the extra asked for) changed since the last install.
    local stamp="$VENV/.installed-${extra:-base}" want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
    step "installing the project${extra:+ with [$extra]}"
    # pip's and setuptools' notes (an editable install's warning box) go to a log shown only on failure.
    local log="$VENV/install.log"
    if ! { "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip \
           && "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".${extra:+[$extra]}"; \
         } >"$log" 2>&1; then
        cat "$log" >&2
        echo "installing the project failed (the log above is in $log)" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
}

# Start the machine's Postgres cluster when the URL points at this machine and nothing answers there.
ensure_local_postgres() {
    local url="$1" host port
    host=$(PGURL="$url" "$VENV/bin/python" -c 'import os, urllib.parse as u; print(u.urlsplit(os.environ["PGURL"]).hostname or "")')
    port=$(PGURL="$url" "$VENV/bin/python" -c 'import os, urllib.parse as u; print(u.urlsplit(os.environ["PGURL"]).port or 5432)')
    if pg_answers "$url"; then return 0; fi
    if [ "$host" = "127.0.0.1" ] || [ "$host" = "localhost" ]; then
        if command -v pg_ctlcluster >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
            step "starting the local PostgreSQL cluster on port $port"
            local version
            version=$(ls /etc/postgresql | sort -V | tail -1)
            pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        fi
    fi
    for _ in $(seq 1 60); do
        if pg_answers "$url"; then return 0; fi
        sleep 0.5
    done
    echo "PostgreSQL does not answer at $url; start it or set TEST_DATABASE_URL" >&2
    exit 1
}

pg_answers() {
    PGURL="$1" "$VENV/bin/python" - <<'PY' >/dev/null 2>&1
import asyncio, os, asyncpg
async def main():
    conn = await asyncpg.connect(os.environ["PGURL"], timeout=3)
    await conn.close()
asyncio.run(main())
PY
}

# Debian's Chromium for the browser tests (Playwright must never download its own browser).
ensure_chromium() {
    if command -v chromium >/dev/null 2>&1; then return 0; fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        step "installing Chromium from Debian"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "chromium is not installed; browser tests will fail (install Debian's chromium package)" >&2
    fi
}
