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
        Migration(version: 2, name: "features, contracts, erasure, re-identification", sql: """
            CREATE TABLE feature_definitions (
                name TEXT PRIMARY KEY,
                type TEXT NOT NULL,
                purpose TEXT NOT NULL,
                ttl_seconds INTEGER NOT NULL,
                classification TEXT NOT NULL,
                updated_at INTEGER NOT NULL
            ) STRICT;

            -- Values sealed under the subject key (associated data "feature" · pid ·
            -- name). receipt_id is the grant in force when the value was written
            -- (lineage); NULL when the policy's basis, not consent, covered it.
            CREATE TABLE features (
                pid TEXT NOT NULL REFERENCES subjects (pid) ON DELETE CASCADE,
                name TEXT NOT NULL,
                purpose TEXT NOT NULL,
                sealed_value BLOB NOT NULL,
                basis TEXT NOT NULL,
                receipt_id TEXT,
                written_at INTEGER NOT NULL,
                expires_at INTEGER NOT NULL,
                PRIMARY KEY (pid, name)
            ) STRICT, WITHOUT ROWID;
            -- A subject's values share the primary key's pid prefix: reads and purges by
            -- (pid, purpose) scan that short range, so no other index is kept but the sweeper's.
            CREATE INDEX features_by_expiry ON features (expires_at);

            CREATE TABLE contracts (
                name TEXT PRIMARY KEY,
                definition TEXT NOT NULL,
                updated_at INTEGER NOT NULL
            ) STRICT;

            -- An erasure request and the regions it waits for (one row per region:
            -- the cross-region cascade adds rows, the shape stays).
            CREATE TABLE erasure_requests (
                erasure_id TEXT PRIMARY KEY,
                requested_at INTEGER NOT NULL,
                requested_by TEXT NOT NULL,
                origin_region TEXT NOT NULL,
                jurisdiction TEXT NOT NULL,
                due_at INTEGER NOT NULL,
                link BLOB,
                erased_pids TEXT NOT NULL,
                status TEXT NOT NULL,
                completed_at INTEGER
            ) STRICT;
            CREATE INDEX erasure_requests_by_status ON erasure_requests (status, due_at);
            CREATE TABLE erasure_regions (
                erasure_id TEXT NOT NULL REFERENCES erasure_requests (erasure_id),
                region TEXT NOT NULL,
                status TEXT NOT NULL,
                PRIMARY KEY (erasure_id, region)
            ) STRICT, WITHOUT ROWID;
            -- A region's signed statement of what it erased.
            CREATE TABLE erasure_acks (
                erasure_id TEXT NOT NULL REFERENCES erasure_requests (erasure_id),
                region TEXT NOT NULL,
                node TEXT NOT NULL,
                erased_at INTEGER NOT NULL,
                counts TEXT NOT NULL,
                signature BLOB NOT NULL,
                public_key BLOB NOT NULL,
                PRIMARY KEY (erasure_id, region)
            ) STRICT;

            CREATE TABLE reidentifications (
                id TEXT PRIMARY KEY,
                pid TEXT NOT NULL,
                reason TEXT NOT NULL,
                ticket TEXT NOT NULL,
                requester TEXT NOT NULL,
                status TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                fulfilled_at INTEGER
            ) STRICT;
            CREATE TABLE reidentification_approvals (
                id TEXT NOT NULL REFERENCES reidentifications (id),
                approver TEXT NOT NULL,
                approved_at INTEGER NOT NULL,
                PRIMARY KEY (id, approver)
            ) STRICT, WITHOUT ROWID;
            """),
        Migration(version: 3, name: "vector collections and vectors", sql: """
            -- A collection's shape is fixed once it holds vectors; the export
            -- settings (noised embeddings for the federation) are optional.
            CREATE TABLE collections (
                name TEXT PRIMARY KEY,
                dimension INTEGER NOT NULL,
                metric TEXT NOT NULL,
                purpose TEXT NOT NULL,
                index_kind TEXT NOT NULL,
                m INTEGER NOT NULL,
                ef_construction INTEGER NOT NULL,
                ef INTEGER NOT NULL,
                export_epsilon REAL,
                export_delta REAL,
                export_clip_norm REAL,
                updated_at INTEGER NOT NULL
            ) STRICT;

            -- One vector per subject and collection, sealed under the subject key
            -- (associated data: "vector/" · collection · "/" · pid), with the
            -- receipt in force when written. The rowid orders the rebuild at start.
            CREATE TABLE vectors (
                collection TEXT NOT NULL REFERENCES collections (name),
                pid TEXT NOT NULL REFERENCES subjects (pid),
                sealed_vector BLOB NOT NULL,
                basis TEXT NOT NULL,
                receipt_id TEXT,
                written_at INTEGER NOT NULL,
                UNIQUE (collection, pid)
            ) STRICT;
            CREATE INDEX vectors_by_pid ON vectors (pid);
            """),
        Migration(version: 4, name: "privacy budget ledger and aggregate releases", sql: """
            -- Every release and every external charge, committed before its result
            -- is returned: the spend of a dataset in a period is the sum of its rows.
            CREATE TABLE privacy_charges (
                charge_id TEXT PRIMARY KEY,
                dataset TEXT NOT NULL,
                period TEXT NOT NULL,
                mechanism TEXT NOT NULL,
                accountant TEXT NOT NULL,
                epsilon REAL NOT NULL,
                delta REAL NOT NULL,
                release_id TEXT,
                description TEXT,
                charged_at INTEGER NOT NULL
            ) STRICT;
            CREATE INDEX privacy_charges_by_dataset ON privacy_charges (dataset, period);

            -- Released aggregates: noised values only, with how they were noised.
            CREATE TABLE aggregate_releases (
                release_id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                region TEXT NOT NULL,
                kind TEXT NOT NULL,
                dataset TEXT NOT NULL,
                result TEXT NOT NULL,
                mechanism TEXT NOT NULL,
                epsilon REAL NOT NULL,
                delta REAL NOT NULL,
                noise_scale REAL NOT NULL,
                released_at INTEGER NOT NULL
            ) STRICT;
            CREATE INDEX aggregate_releases_by_name ON aggregate_releases (name, released_at);
            """),
        Migration(version: 5, name: "per-subject embedding export budget", sql: """
            -- Each noised embedding exported, charged to its subject's budget for the
            -- period before it leaves. Erasure deletes the subject's rows.
            CREATE TABLE embedding_charges (
                pid TEXT NOT NULL,
                collection TEXT NOT NULL,
                period TEXT NOT NULL,
                epsilon REAL NOT NULL,
                delta REAL NOT NULL,
                charged_at INTEGER NOT NULL
            ) STRICT;
            CREATE INDEX embedding_charges_by_subject ON embedding_charges (pid, period);
            """),
        Migration(version: 6, name: "signed erasure requests, node-scoped acks, signed completion", sql: """
            -- The request as its origin node signed it (docs/FORMATS.md, "Erasure
            -- certificate"), and the origin's signature over its completion. Requests
            -- recorded before this migration have no request_signature: they carry
            -- no certificate.
            ALTER TABLE erasure_requests ADD COLUMN origin_node TEXT;
            ALTER TABLE erasure_requests ADD COLUMN policy_version INTEGER;
            ALTER TABLE erasure_requests ADD COLUMN link_hash BLOB;
            ALTER TABLE erasure_requests ADD COLUMN request_signature BLOB;
            ALTER TABLE erasure_requests ADD COLUMN public_key BLOB;
            ALTER TABLE erasure_requests ADD COLUMN completion_signature BLOB;
            -- The nodes of each expected region that must ack (signed in the request).
            CREATE TABLE erasure_expected_nodes (
                erasure_id TEXT NOT NULL REFERENCES erasure_requests (erasure_id),
                region TEXT NOT NULL,
                node TEXT NOT NULL,
                PRIMARY KEY (erasure_id, region, node)
            ) STRICT, WITHOUT ROWID;
            -- One signed ack per node (scope `node`): what that node erased.
            CREATE TABLE erasure_node_acks (
                erasure_id TEXT NOT NULL REFERENCES erasure_requests (erasure_id),
                region TEXT NOT NULL,
                node TEXT NOT NULL,
                scope TEXT NOT NULL,
                request_hash BLOB NOT NULL,
                erased_at INTEGER NOT NULL,
                counts TEXT NOT NULL,
                link_hash BLOB NOT NULL,
                wal_truncated INTEGER NOT NULL,
                policy_version INTEGER NOT NULL,
                signature BLOB NOT NULL,
                public_key BLOB NOT NULL,
                PRIMARY KEY (erasure_id, region, node)
            ) STRICT, WITHOUT ROWID;
            """),
        Migration(version: 7, name: "subject keys wrapped under bucket keys", sql: """
            -- The bucket key (held only in the keyring) that wraps the subject key,
            -- and its version. NULL: still wrapped under the region data key; the
            -- node re-wraps such rows into their buckets at start (SubjectKeyring.recover).
            ALTER TABLE subjects ADD COLUMN wrap_bucket INTEGER;
            ALTER TABLE subjects ADD COLUMN wrap_version INTEGER;
            CREATE INDEX subjects_by_wrap ON subjects (wrap_bucket, wrap_version);
            """),
        Migration(version: 8, name: "a subject registered again after its erasure starts a new receipt chain", sql: """
            -- A pid's lives: the subject registered again after an erasure keeps its pid
            -- (the identifier's pseudonym) but is a new subject with a new receipt chain.
            -- Its life is 1 + the last life that left receipts (docs/DECISIONS.md).
            ALTER TABLE subjects ADD COLUMN life INTEGER NOT NULL DEFAULT 1;
            CREATE TABLE consent_receipts_by_life (
                receipt_id TEXT PRIMARY KEY,
                pid TEXT NOT NULL,
                life INTEGER NOT NULL,
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
                UNIQUE (pid, life, seq)
            ) STRICT;
            INSERT INTO consent_receipts_by_life (receipt_id, pid, life, seq, action, purposes, basis, source, collected_at, expires_at,
                recorded_at, prev_hash, hash, redacted)
            SELECT receipt_id, pid, 1, seq, action, purposes, basis, source, collected_at, expires_at, recorded_at, prev_hash, hash, redacted
            FROM consent_receipts;
            DROP TABLE consent_receipts;
            ALTER TABLE consent_receipts_by_life RENAME TO consent_receipts;
            """),
        Migration(version: 9, name: "lists stored as rows, not joined text", sql: """
            -- A receipt's purposes, in the order its hash covers them (docs/FORMATS.md,
            -- "Consent receipt hash"). Erasure deletes a subject's rows with its content.
            CREATE TABLE consent_receipt_purposes (
                receipt_id TEXT NOT NULL REFERENCES consent_receipts (receipt_id),
                position INTEGER NOT NULL,
                purpose TEXT NOT NULL,
                PRIMARY KEY (receipt_id, position)
            ) STRICT, WITHOUT ROWID;
            -- The subjects an erasure request erased on this node.
            CREATE TABLE erasure_erased_pids (
                erasure_id TEXT NOT NULL REFERENCES erasure_requests (erasure_id),
                pid TEXT NOT NULL,
                PRIMARY KEY (erasure_id, pid)
            ) STRICT, WITHOUT ROWID;
            -- A node's ack: rows it erased per table (the signed `counts`).
            CREATE TABLE erasure_ack_counts (
                erasure_id TEXT NOT NULL,
                region TEXT NOT NULL,
                node TEXT NOT NULL,
                table_name TEXT NOT NULL,
                count INTEGER NOT NULL,
                PRIMARY KEY (erasure_id, region, node, table_name),
                FOREIGN KEY (erasure_id, region, node) REFERENCES erasure_node_acks (erasure_id, region, node)
            ) STRICT, WITHOUT ROWID;
            """, convert: JoinedTextMigration.convert),
        Migration(version: 10, name: "a primary key on every table", sql: """
            -- A SQLite session records only tables with a PRIMARY KEY, and a changeset
            -- carries no hidden rowid (docs/DECISIONS.md, "Every node table has a
            -- primary key"): each table gets a key whose values every node computes alike.

            -- Vectors: keyed by (collection, pid). written_seq orders the rebuild at
            -- start (the order the vectors were written, each rewrite moving to the
            -- end): 1 + the collection's highest at each write. Existing rows keep the
            -- order of their old rowids. Still a rowid table, not WITHOUT ROWID: a row
            -- holds a whole sealed vector, and SQLite keeps WITHOUT ROWID rows small.
            CREATE TABLE vectors_keyed (
                collection TEXT NOT NULL REFERENCES collections (name),
                pid TEXT NOT NULL REFERENCES subjects (pid),
                sealed_vector BLOB NOT NULL,
                basis TEXT NOT NULL,
                receipt_id TEXT,
                written_at INTEGER NOT NULL,
                written_seq INTEGER NOT NULL,
                PRIMARY KEY (collection, pid)
            ) STRICT;
            INSERT INTO vectors_keyed (collection, pid, sealed_vector, basis, receipt_id, written_at, written_seq)
            SELECT collection, pid, sealed_vector, basis, receipt_id, written_at,
                   row_number() OVER (PARTITION BY collection ORDER BY rowid)
            FROM vectors;
            DROP TABLE vectors;
            ALTER TABLE vectors_keyed RENAME TO vectors;
            -- Not UNIQUE: a follower applies a batch's rows in the changeset's order, not
            -- the statements' (a row deleted and another written with its written_seq).
            CREATE INDEX vectors_in_written_order ON vectors (collection, written_seq, pid);
            CREATE INDEX vectors_by_pid ON vectors (pid);

            -- Embedding charges: the seq-th charge of a subject in a period, 1 + the
            -- highest at each charge. Existing rows are numbered in the order they
            -- were charged; rows that tie on every column are interchangeable, so
            -- nodes holding the same rows number them alike. The key's (pid, period)
            -- prefix is what the budget sums and erasure deletes by.
            CREATE TABLE embedding_charges_keyed (
                pid TEXT NOT NULL,
                period TEXT NOT NULL,
                seq INTEGER NOT NULL,
                collection TEXT NOT NULL,
                epsilon REAL NOT NULL,
                delta REAL NOT NULL,
                charged_at INTEGER NOT NULL,
                PRIMARY KEY (pid, period, seq)
            ) STRICT, WITHOUT ROWID;
            INSERT INTO embedding_charges_keyed (pid, period, seq, collection, epsilon, delta, charged_at)
            SELECT pid, period, row_number() OVER (PARTITION BY pid, period ORDER BY charged_at, collection, epsilon, delta, rowid),
                   collection, epsilon, delta, charged_at
            FROM embedding_charges;
            DROP TABLE embedding_charges;
            ALTER TABLE embedding_charges_keyed RENAME TO embedding_charges;
            """),
        Migration(version: 11, name: "the region log's applied index; rotated bucket versions", sql: """
            -- How far this database has applied the region log: written in the same
            -- transaction as each entry's rows, so the two never disagree after a crash.
            -- Local to each node (never in an entry's changeset).
            CREATE TABLE region_log_applied (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                applied_index INTEGER NOT NULL,
                applied_term INTEGER NOT NULL
            ) STRICT;
            INSERT INTO region_log_applied (id, applied_index, applied_term) VALUES (1, 0, 0);

            -- The current version of each bucket key an erasure rotated: replicated, so a
            -- follower ratchets its own copy of the key to it even when no subject row is
            -- left under the new version. A version number, never key material.
            CREATE TABLE bucket_versions (
                bucket INTEGER PRIMARY KEY,
                version INTEGER NOT NULL
            ) STRICT;
            """),
        Migration(version: 12, name: "an erasure's counts where it ran; who signed its completion", sql: """
            -- The rows an erasure removed here, per table, written in the erasure's own
            -- transaction: in a region with a log every node applies the same rows, and
            -- the region's one ack repeats these counts once each node has confirmed it.
            CREATE TABLE erasure_local_counts (
                erasure_id TEXT NOT NULL REFERENCES erasure_requests (erasure_id),
                table_name TEXT NOT NULL,
                count INTEGER NOT NULL,
                PRIMARY KEY (erasure_id, table_name)
            ) STRICT, WITHOUT ROWID;
            -- The node of the origin region that signed the completion, and its key;
            -- NULL: the origin (the only signer before region logs).
            ALTER TABLE erasure_requests ADD COLUMN completed_by TEXT;
            ALTER TABLE erasure_requests ADD COLUMN completion_public_key BLOB;
            """),
        Migration(version: 13, name: "the federation's entries", sql: """
            -- Per origin region, the contiguous prefix of the federation's entries this
            -- region holds (docs/FEDERATION.md): a record in its codec's form, or NULL for
            -- a placeholder (a record the residency policy keeps from this region).
            -- Replicated by the region log, so any node can answer a peer region's digest.
            CREATE TABLE federation_entries (
                origin TEXT NOT NULL,
                seq INTEGER NOT NULL,
                kind INTEGER NOT NULL,
                record BLOB,
                -- The release or erasure id a record is about (NULL for a placeholder).
                record_id TEXT,
                PRIMARY KEY (origin, seq)
            ) STRICT, WITHOUT ROWID;
            CREATE INDEX federation_entries_by_record ON federation_entries (record_id);
            """),
        Migration(version: 14, name: "noised embeddings: exports and retired federation entries", sql: """
            -- Per collection with export settings and subject, the region's latest export
            -- of the subject's vector (docs/FEDERATION.md, "Noised embeddings"): the noised
            -- copy as it left, sealed under the subject's key (crypto-shredded with it), or
            -- its retraction. Each export or retraction takes the next generation; pending
            -- until the federation has published that generation.
            CREATE TABLE embedding_exports (
                collection TEXT NOT NULL,
                pid TEXT NOT NULL,
                -- 'exported', 'retracted', or 'none' (never exported: generation 0).
                state TEXT NOT NULL CHECK (state IN ('exported', 'retracted', 'none')),
                generation INTEGER NOT NULL,
                -- The vectors.written_seq this state is about (NULL: the vector is gone).
                vector_seq INTEGER,
                sealed_noised BLOB,
                sigma REAL,
                epsilon REAL,
                delta REAL,
                changed_at INTEGER NOT NULL,
                pending INTEGER NOT NULL,
                -- The vector version last refused for a spent budget, and the period it was refused in.
                skipped_seq INTEGER,
                skipped_period TEXT,
                PRIMARY KEY (collection, pid)
            ) STRICT, WITHOUT ROWID;
            CREATE INDEX embedding_exports_pending ON embedding_exports (pending) WHERE pending = 1;
            CREATE INDEX embedding_exports_by_pid ON embedding_exports (pid);
            -- 1: a placeholder for a noised embedding every region drops (superseded or erased).
            ALTER TABLE federation_entries ADD COLUMN retired INTEGER NOT NULL DEFAULT 0;
            """),
        Migration(version: 15, name: "a collection's target recall", sql: """
            -- The recall@10 a collection's searches without ef are calibrated to (NULL: none).
            ALTER TABLE collections ADD COLUMN target_recall REAL;
            """),
        Migration(version: 16, name: "a collection's vector write position", sql: """
            -- Per collection, the written_seq of its latest vector write. A write takes
            -- 1 + this (not 1 + the highest row's, which a deleted newest vector would
            -- hand out again), so a written_seq names one version of one vector for
            -- good, and a saved graph names the position it was taken at
            -- (docs/DECISIONS.md, "Graph snapshots"). Replicated like the rows.
            CREATE TABLE vector_write_positions (
                collection TEXT PRIMARY KEY REFERENCES collections (name),
                written_seq INTEGER NOT NULL
            ) STRICT, WITHOUT ROWID;
            INSERT INTO vector_write_positions (collection, written_seq)
            SELECT collection, max(written_seq) FROM vectors GROUP BY collection;
            """),
    ])
}
