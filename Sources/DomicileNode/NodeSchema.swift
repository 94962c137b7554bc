import DomicileStorage

/// The per-node schema. Migrations are append-only: never edit a released one.
enum NodeSchema {
    static let migrator = Migrator([
        Migration(version: 1, name: "subjects, identities, consent receipts, audit log", sql: """
            -- A subject: its pid, the federation link (for erasure by identifier),
            -- and its own AES key wrapped under the region data key. Destroying the
            -- wrapped key makes every copy of its ciphertexts unreadable.
            CREATE TABLE subjects (
                pid TEXT PRIMARY KEY,
                key_version INTEGER NOT NULL,
                link BLOB NOT NULL,
                link_version INTEGER NOT NULL,
                wrapped_key BLOB NOT NULL,
                created_at INTEGER NOT NULL
            ) STRICT;
            CREATE INDEX subjects_by_link ON subjects (link);

            -- The identifier a subject was registered under, encrypted with the
            -- subject key (associated data: "identity" · pid · kind).
            CREATE TABLE identities (
                pid TEXT NOT NULL REFERENCES subjects (pid) ON DELETE CASCADE,
                kind TEXT NOT NULL,
                sealed_value BLOB NOT NULL,
                PRIMARY KEY (pid, kind)
            ) STRICT, WITHOUT ROWID;

            -- Append-only, hash-chained per subject. No foreign key: receipts
            -- outlive an erasure, redacted to their hashes.
            CREATE TABLE consent_receipts (
                receipt_id TEXT PRIMARY KEY,
                pid TEXT NOT NULL,
                seq INTEGER NOT NULL,
                action TEXT NOT NULL,
                purposes TEXT NOT NULL,
                basis TEXT,
                source TEXT NOT NULL,
                collected_at INTEGER NOT NULL,
                expires_at INTEGER,
                recorded_at INTEGER NOT NULL,
                prev_hash BLOB NOT NULL,
                hash BLOB NOT NULL,
                redacted INTEGER NOT NULL DEFAULT 0,
                UNIQUE (pid, seq)
            ) STRICT;

            -- The purposes each subject has granted and not revoked: the fold of
            -- its receipts (ConsentFolding.apply), kept up to date in the same
            -- transaction as each receipt. Expiry is applied when read.
            CREATE TABLE consent_active (
                pid TEXT NOT NULL,
                purpose TEXT NOT NULL,
                basis TEXT NOT NULL,
                granted_at INTEGER NOT NULL,
                expires_at INTEGER,
                receipt_id TEXT NOT NULL,
                PRIMARY KEY (pid, purpose)
            ) STRICT, WITHOUT ROWID;
            CREATE INDEX consent_active_by_purpose ON consent_active (purpose, pid);

            -- Hash-chained across the whole node.
            CREATE TABLE audit_log (
                seq INTEGER PRIMARY KEY,
                at INTEGER NOT NULL,
                principal TEXT NOT NULL,
                action TEXT NOT NULL,
                pid TEXT,
                purpose TEXT,
                outcome TEXT NOT NULL,
                request_id TEXT,
                detail TEXT,
                prev_hash BLOB NOT NULL,
                hash BLOB NOT NULL
            ) STRICT;
            CREATE INDEX audit_log_by_pid ON audit_log (pid);
            """),
    ])
}
