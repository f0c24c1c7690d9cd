"""The SQLite catalog's tables, as the migrations that made them (applied in order, each
once; never edit a published one, append a new one)."""

from __future__ import annotations

# SQL between integer microseconds since 1970 and format_utc's fixed-width text (floor
# division: a time before 1970 has a negative count but positive fractional digits)
_US_TO_TEXT = ("strftime('%Y-%m-%dT%H:%M:%S', ({0} - (({0} % 1000000) + 1000000) % 1000000) "
               "/ 1000000, 'unixepoch') || printf('.%06dZ', (({0} % 1000000) + 1000000) "
               "% 1000000)")
_TEXT_TO_US = ("(CAST(strftime('%s', substr({0}, 1, 19)) AS INTEGER) * 1000000 + CAST(substr("
               "replace(substr({0}, 21), 'Z', '') || '000000', 1, 6) AS INTEGER))")

MIGRATIONS = [
    ("create catalog tables", """
        CREATE TABLE stations (
            id TEXT PRIMARY KEY,
            name TEXT,
            network TEXT NOT NULL,
            latitude REAL,
            longitude REAL,
            interval_seconds INTEGER,
            created_at TEXT NOT NULL
        );
        CREATE TABLE station_keys (
            key_id TEXT PRIMARY KEY,
            station TEXT NOT NULL REFERENCES stations(id),
            public_key BLOB NOT NULL,
            status TEXT NOT NULL DEFAULT 'active',
            created_at TEXT NOT NULL,
            revoked_at TEXT
        );
        CREATE TABLE batches (
            id INTEGER PRIMARY KEY,
            station TEXT NOT NULL REFERENCES stations(id),
            epoch TEXT NOT NULL,
            seq INTEGER NOT NULL,
            key_id TEXT NOT NULL,
            signature BLOB NOT NULL,
            signed_sha256 TEXT NOT NULL,
            body BLOB NOT NULL,
            topic TEXT NOT NULL,
            adapter TEXT,
            adapter_version TEXT,
            source_name TEXT,
            source_stream TEXT,
            source_start INTEGER,
            source_end INTEGER,
            raw_sha256 TEXT,
            clock_synced INTEGER,
            clock_offset_ms REAL,
            readings INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            received_at TEXT NOT NULL,
            committed_at TEXT NOT NULL,
            UNIQUE (station, epoch, seq)
        );
        CREATE TABLE observations (
            batch_id INTEGER NOT NULL REFERENCES batches(id),
            station TEXT NOT NULL,
            observed_at TEXT NOT NULL,
            element TEXT NOT NULL,
            value REAL,
            unit TEXT NOT NULL,
            source_field TEXT NOT NULL,
            source_flag TEXT,
            qc INTEGER NOT NULL
        );
        CREATE INDEX observations_station_time ON observations (station, observed_at);
        CREATE TABLE refusals (
            id INTEGER PRIMARY KEY,
            received_at TEXT NOT NULL,
            topic TEXT NOT NULL,
            station TEXT,
            key_id TEXT,
            epoch TEXT,
            seq INTEGER,
            reason TEXT NOT NULL,
            detail TEXT NOT NULL,
            payload_sha256 TEXT NOT NULL
        );
    """),
    ("observations say which period an aggregate covers", """
        ALTER TABLE observations ADD COLUMN period_s INTEGER
    """),
    ("QC: which checks ran on each observation and which flagged it", """
        CREATE TABLE qc_checks (bit INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
        ALTER TABLE observations ADD COLUMN qc_ran INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE observations ADD COLUMN qc_failed INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE batches ADD COLUMN qc_origin TEXT;
        CREATE TABLE qc_state (
            check_name TEXT NOT NULL,
            series TEXT NOT NULL,
            state TEXT NOT NULL,
            PRIMARY KEY (check_name, series)
        );
    """),
    ("gaps reported by stations whose outbox evicted batches", """
        CREATE TABLE gaps (
            id INTEGER PRIMARY KEY,
            station TEXT NOT NULL REFERENCES stations(id),
            epoch TEXT NOT NULL,
            gap_id INTEGER NOT NULL,
            first_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL,
            batches INTEGER NOT NULL,
            readings INTEGER NOT NULL,
            first_observed TEXT,
            last_observed TEXT,
            reason TEXT NOT NULL,
            evicted_at TEXT NOT NULL,
            received_at TEXT NOT NULL,
            key_id TEXT NOT NULL,
            signature BLOB NOT NULL,
            UNIQUE (station, epoch, gap_id)
        )
    """),
    ("bundles: backlog batches a station signed together", """
        CREATE TABLE bundles (
            id INTEGER PRIMARY KEY,
            station TEXT NOT NULL REFERENCES stations(id),
            topic TEXT NOT NULL,
            key_id TEXT NOT NULL,
            signature BLOB NOT NULL,
            digests BLOB NOT NULL,
            received_at TEXT NOT NULL
        );
        ALTER TABLE batches ADD COLUMN bundle_id INTEGER REFERENCES bundles(id)
    """),
    ("key rotation: an announced successor makes the old key retire after a grace period", """
        ALTER TABLE station_keys ADD COLUMN retire_at INTEGER
    """),
    ("broker accounts: per-station credentials for a closed broker", """
        CREATE TABLE broker_accounts (
            username TEXT PRIMARY KEY,
            station TEXT REFERENCES stations(id),
            password_hash TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
    """),
    ("one-time enrolment tokens", """
        CREATE TABLE enrolment_tokens (
            token_sha256 TEXT PRIMARY KEY,
            station TEXT NOT NULL REFERENCES stations(id),
            created_at TEXT NOT NULL,
            expires_at INTEGER NOT NULL,
            used_at TEXT,
            key_id TEXT
        )
    """),
    ("replay windows: the lowest sequence number each station outbox may still send", """
        CREATE TABLE replay_floors (
            station TEXT NOT NULL,
            epoch TEXT NOT NULL,
            floor INTEGER NOT NULL,
            PRIMARY KEY (station, epoch)
        )
    """),
    # A row of text (station, time, element, unit, field) cost 150 bytes with its index and
    # bound the drain rate; a series number and integer microseconds take a third of that.
    # The view keeps the old columns for whoever reads the catalog with SQL.
    ("compact observations: series numbers and integer times, the old columns as a view", f"""
        CREATE TABLE series (
            id INTEGER PRIMARY KEY,
            station TEXT NOT NULL REFERENCES stations(id),
            element TEXT NOT NULL,
            unit TEXT NOT NULL,
            source_field TEXT NOT NULL,
            period_s INTEGER
        );
        CREATE UNIQUE INDEX series_identity
            ON series (station, element, unit, source_field, coalesce(period_s, -1));
        CREATE TABLE observation_values (
            id INTEGER PRIMARY KEY,
            batch_id INTEGER NOT NULL REFERENCES batches(id),
            series INTEGER NOT NULL REFERENCES series(id),
            observed_us INTEGER NOT NULL,
            value REAL,
            source_flag TEXT,
            qc INTEGER NOT NULL,
            qc_ran INTEGER NOT NULL,
            qc_failed INTEGER NOT NULL
        );
        INSERT INTO series (station, element, unit, source_field, period_s)
            SELECT DISTINCT station, element, unit, source_field, period_s FROM observations;
        INSERT INTO observation_values (batch_id, series, observed_us, value, source_flag, qc,
                                        qc_ran, qc_failed)
            SELECT o.batch_id, s.id, {_TEXT_TO_US.format("o.observed_at")}, o.value,
                   o.source_flag, o.qc, o.qc_ran, o.qc_failed
            FROM observations o JOIN series s ON s.station = o.station
                AND s.element = o.element AND s.unit = o.unit
                AND s.source_field = o.source_field AND s.period_s IS o.period_s
            ORDER BY o.rowid;
        DROP TABLE observations;
        CREATE INDEX observation_values_series_time ON observation_values (series, observed_us);
        CREATE VIEW observations AS
            SELECT o.id, o.batch_id, s.station, {_US_TO_TEXT.format("o.observed_us")}
                       AS observed_at,
                   o.observed_us, s.element, o.value, s.unit, s.source_field, o.source_flag,
                   o.qc, s.period_s, o.qc_ran, o.qc_failed, o.series
            FROM observation_values o JOIN series s ON s.id = o.series
    """),
    # A station converts to its elements' units before signing (obslink.plugins.units);
    # the unit its source wrote stays on the series, and a change of it starts a new one.
    ("series keep the unit their source wrote", f"""
        ALTER TABLE series ADD COLUMN source_unit TEXT;
        DROP INDEX series_identity;
        CREATE UNIQUE INDEX series_identity ON series (station, element, unit, source_field,
            coalesce(period_s, -1), coalesce(source_unit, ''));
        DROP VIEW observations;
        CREATE VIEW observations AS
            SELECT o.id, o.batch_id, s.station, {_US_TO_TEXT.format("o.observed_us")}
                       AS observed_at,
                   o.observed_us, s.element, o.value, s.unit, s.source_field, o.source_flag,
                   o.qc, s.period_s, o.qc_ran, o.qc_failed, o.series, s.source_unit
            FROM observation_values o JOIN series s ON s.id = o.series
    """),
    ("operators' station records: retirement, withdrawn tokens, derived broker accounts, "
     "the enrolment log, the broker configurations written", """
        ALTER TABLE stations ADD COLUMN retired_at TEXT;
        ALTER TABLE enrolment_tokens ADD COLUMN revoked_at TEXT;
        ALTER TABLE broker_accounts ADD COLUMN generation INTEGER;
        ALTER TABLE broker_accounts ADD COLUMN updated_at TEXT;
        UPDATE broker_accounts SET updated_at = created_at;
        CREATE TABLE enrolment_attempts (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            station TEXT,
            key_id TEXT,
            client TEXT,
            outcome TEXT NOT NULL,
            reason TEXT,
            detail TEXT NOT NULL
        );
        CREATE TABLE broker_configs (
            id INTEGER PRIMARY KEY,
            directory TEXT NOT NULL,
            written_at TEXT NOT NULL
        )
    """),
    # docs/provenance.md: a leaf per committed batch, in commit order; batches committed
    # before this migration get theirs when the catalog is first opened after it. A batch's
    # observation rows are consecutive from first_row, so observation n is row first_row + n;
    # log_index is its leaf's (a column here, not an index on log_leaves, costs ingest less).
    ("the transparency log: a Merkle leaf per committed batch and signed tree heads", """
        CREATE TABLE log_leaves (
            idx INTEGER PRIMARY KEY,
            batch_id INTEGER NOT NULL REFERENCES batches(id),
            committed_by TEXT NOT NULL,
            qc_sha256 BLOB NOT NULL,
            hash BLOB NOT NULL
        );
        CREATE TABLE tree_heads (
            id INTEGER PRIMARY KEY,
            size INTEGER NOT NULL,
            root BLOB NOT NULL,
            signed_at INTEGER NOT NULL,
            key_id TEXT NOT NULL,
            public_key BLOB NOT NULL,
            signature BLOB NOT NULL
        );
        CREATE INDEX tree_heads_size ON tree_heads (size);
        ALTER TABLE batches ADD COLUMN first_row INTEGER;
        ALTER TABLE batches ADD COLUMN log_index INTEGER
    """),
    # docs/provenance.md, "Datasets": a record per station and product; its elements,
    # temporal extent and location are read from the data and the station when asked
    ("datasets: a catalog record per station and product, and the catalog's own settings", """
        CREATE TABLE catalog_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO catalog_settings (key, value) VALUES ('centre_id', 'obslink'),
            ('default_classification', 'public'), ('default_licence', '');
        CREATE TABLE datasets (
            id TEXT PRIMARY KEY,
            station TEXT NOT NULL REFERENCES stations(id),
            product TEXT NOT NULL,
            title TEXT NOT NULL,
            description TEXT,
            classification TEXT NOT NULL,
            licence TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (station, product)
        );
        INSERT INTO datasets (id, station, product, title, classification, licence,
                              created_at, updated_at)
            SELECT 'obslink:' || id || '/surface', id, 'surface',
                   'Surface observations of ' || coalesce(name, id), 'public', '',
                   created_at, created_at FROM stations
    """),
    # docs/monitoring.md: what arrived, per station and hour, counted as each group commits
    # (a day's completeness for a thousand stations then reads 24,000 rows, not millions;
    # per series it cost a row write per live reading); keyed by hour first, so that a live
    # group's rows, all of the current hour, share a few pages; per station when it last
    # committed
    # and its newest batch's clock; alarms, their rules and deliveries
    ("monitoring: hourly counts, schedules, alarms and their deliveries", """
        CREATE TABLE monitor_hours (
            station TEXT NOT NULL,
            hour INTEGER NOT NULL,
            received INTEGER NOT NULL,
            usable INTEGER NOT NULL,
            erroneous INTEGER NOT NULL,
            checked INTEGER NOT NULL,
            latency_sum REAL NOT NULL,
            within_10 INTEGER NOT NULL,
            within_30 INTEGER NOT NULL,
            within_60 INTEGER NOT NULL,
            within_120 INTEGER NOT NULL,
            within_300 INTEGER NOT NULL,
            within_900 INTEGER NOT NULL,
            within_1800 INTEGER NOT NULL,
            within_3600 INTEGER NOT NULL,
            within_7200 INTEGER NOT NULL,
            PRIMARY KEY (hour, station)
        ) WITHOUT ROWID;
        CREATE INDEX monitor_hours_station ON monitor_hours (station, hour);
        CREATE TABLE monitor_stations (
            station TEXT PRIMARY KEY REFERENCES stations(id),
            last_committed_us INTEGER NOT NULL,
            clock_synced INTEGER,
            clock_offset_ms REAL
        ) WITHOUT ROWID;
        CREATE TABLE schedules (
            station TEXT NOT NULL REFERENCES stations(id),
            element TEXT NOT NULL,
            interval_s INTEGER NOT NULL,
            PRIMARY KEY (station, element)
        );
        INSERT INTO catalog_settings (key, value) VALUES ('default_interval_s', '60');
        CREATE TABLE alarm_rules (
            station TEXT NOT NULL,
            rule TEXT NOT NULL,
            settings TEXT NOT NULL,
            PRIMARY KEY (station, rule)
        );
        CREATE TABLE alarms (
            id INTEGER PRIMARY KEY,
            station TEXT NOT NULL,
            rule TEXT NOT NULL,
            subject TEXT NOT NULL,
            raised_us INTEGER NOT NULL,
            cleared_us INTEGER,
            acknowledged_us INTEGER,
            acknowledged_by TEXT,
            detail TEXT NOT NULL,
            value REAL
        );
        CREATE UNIQUE INDEX alarms_open ON alarms (station, rule, subject)
            WHERE cleared_us IS NULL;
        CREATE TABLE webhooks (
            id INTEGER PRIMARY KEY,
            url TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL
        );
        CREATE TABLE alarm_deliveries (
            id INTEGER PRIMARY KEY,
            alarm_id INTEGER NOT NULL REFERENCES alarms(id),
            event TEXT NOT NULL,
            channel TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_us INTEGER NOT NULL,
            last_attempt_us INTEGER,
            last_error TEXT
        );
        CREATE INDEX alarm_deliveries_pending ON alarm_deliveries (status, next_attempt_us)
    """),
    # docs/products.md: large products (radar volumes) kept in the product store, a record
    # each here with its signed manifest; products an outbox refused or evicted
    ("products: radar volumes and other large products, and the products stations lost", """
        CREATE TABLE products (
            id INTEGER PRIMARY KEY,
            station TEXT NOT NULL REFERENCES stations(id),
            epoch TEXT NOT NULL,
            number INTEGER NOT NULL,
            name TEXT NOT NULL,
            format TEXT NOT NULL,
            format_version TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            chunk_bytes INTEGER NOT NULL,
            chunks INTEGER NOT NULL,
            observed_us INTEGER NOT NULL,
            metadata TEXT NOT NULL,
            manifest BLOB NOT NULL,
            topic TEXT NOT NULL,
            key_id TEXT NOT NULL,
            signature BLOB NOT NULL,
            received_at TEXT NOT NULL,
            committed_at TEXT NOT NULL,
            committed_by TEXT NOT NULL,
            UNIQUE (station, epoch, number)
        );
        CREATE INDEX products_station_time ON products (station, observed_us);
        CREATE TABLE product_gaps (
            id INTEGER PRIMARY KEY,
            station TEXT NOT NULL REFERENCES stations(id),
            epoch TEXT NOT NULL,
            gap INTEGER NOT NULL,
            name TEXT NOT NULL,
            size INTEGER NOT NULL,
            observed_us INTEGER,
            reason TEXT NOT NULL,
            detail TEXT NOT NULL,
            at INTEGER NOT NULL,
            received_at TEXT NOT NULL,
            UNIQUE (station, epoch, gap)
        )
    """),
    # docs/products.md: products are leaves of the transparency log too (a leaf names its
    # batch or its product); SQLite changes a column's constraint by copying the table
    ("products join the transparency log", """
        CREATE TABLE log_leaves_new (
            idx INTEGER PRIMARY KEY,
            batch_id INTEGER REFERENCES batches(id),
            product_id INTEGER REFERENCES products(id),
            committed_by TEXT NOT NULL,
            qc_sha256 BLOB NOT NULL,
            hash BLOB NOT NULL,
            CHECK ((batch_id IS NULL) != (product_id IS NULL))
        );
        INSERT INTO log_leaves_new (idx, batch_id, committed_by, qc_sha256, hash)
            SELECT idx, batch_id, committed_by, qc_sha256, hash FROM log_leaves;
        DROP TABLE log_leaves;
        ALTER TABLE log_leaves_new RENAME TO log_leaves;
        ALTER TABLE products ADD COLUMN log_index INTEGER
    """),
    # docs/protocol.md, "Version 2": a compact batch names its context by reference; the
    # context is kept so that the stored body verifies and decodes with nothing else
    ("protocol v2 batch contexts", """
        CREATE TABLE batch_contexts (
            station TEXT NOT NULL,
            ref BLOB NOT NULL,
            body BLOB NOT NULL,
            PRIMARY KEY (station, ref)
        ) WITHOUT ROWID;
        ALTER TABLE batches ADD COLUMN context_ref BLOB
    """),
    # docs/access.md: accounts and their tokens, browser sessions, the address blacklist,
    # failed attempts, and the audit log, append-only (its triggers; the hash chain shows
    # what a trigger cannot stop)
    ("accounts, tokens, sessions, blacklist and the audit log", """
        CREATE TABLE accounts (
            name TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            real_name TEXT NOT NULL,
            role TEXT NOT NULL,
            clearance TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE access_tokens (
            id TEXT PRIMARY KEY,
            account TEXT NOT NULL REFERENCES accounts(name),
            secret_hash TEXT NOT NULL,
            scopes TEXT NOT NULL,
            note TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_us INTEGER,
            revoked_at TEXT
        );
        CREATE INDEX access_tokens_by_account ON access_tokens (account);
        CREATE TABLE access_sessions (
            id_hash TEXT PRIMARY KEY,
            token TEXT NOT NULL REFERENCES access_tokens(id),
            csrf TEXT NOT NULL,
            expires_us INTEGER NOT NULL
        );
        CREATE TABLE access_blacklist (
            network TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            added_at TEXT NOT NULL
        );
        CREATE TABLE access_failures (
            address TEXT NOT NULL,
            at_us INTEGER NOT NULL
        );
        CREATE INDEX access_failures_by_address ON access_failures (address, at_us);
        CREATE TABLE audit_log (
            seq INTEGER PRIMARY KEY,
            at_us INTEGER NOT NULL,
            account TEXT,
            address TEXT,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            status INTEGER,
            datasets TEXT NOT NULL,
            rows INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            detail TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE INDEX audit_log_by_time ON audit_log (at_us);
        CREATE INDEX audit_log_by_account ON audit_log (account, at_us);
        CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END
    """),
]

MAX_CATALOG_CHECKS = 62  # bits of a signed 64-bit integer column
