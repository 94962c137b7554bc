#ifndef DOMICILE_CSQLITE_SHIM_H
#define DOMICILE_CSQLITE_SHIM_H

// The session extension (changesets of a transaction: the region log's
// entries) is built into Debian's libsqlite3; its declarations are behind
// these two macros.
#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include <sqlite3.h>

// SQLITE_TRANSIENT is a function-like cast Swift cannot import. It tells SQLite
// to copy the bound bytes before the bind call returns, so the Swift buffer may
// be released right after (sqlite3.h, "Binding Values To Prepared Statements").
static inline int domicile_sqlite3_bind_text(sqlite3_stmt *stmt, int index,
                                             const char *text, int bytes) {
    return sqlite3_bind_text(stmt, index, text, bytes, SQLITE_TRANSIENT);
}

static inline int domicile_sqlite3_bind_blob(sqlite3_stmt *stmt, int index,
                                             const void *blob, int bytes) {
    return sqlite3_bind_blob(stmt, index, blob, bytes, SQLITE_TRANSIENT);
}

// Extended result codes are shifted-or macros Swift does not import.
static inline int domicile_sqlite_constraint_unique(void) { return SQLITE_CONSTRAINT_UNIQUE; }
static inline int domicile_sqlite_constraint_primarykey(void) { return SQLITE_CONSTRAINT_PRIMARYKEY; }

#endif
