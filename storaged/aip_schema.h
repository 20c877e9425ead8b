/*  aip_schema.h — peers.db schema and its migrations.

    The first version is the original Python tool's schema exactly, so a
    database it wrote opens here unchanged: its tables are created only when
    missing, its later "token" column is added when missing. Each later
    change is one step, applied in order and recorded in PRAGMA user_version,
    each in its own transaction. */
#ifndef AIP_SCHEMA_H_INCLUDED
#define AIP_SCHEMA_H_INCLUDED

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

//  Schema version this build writes
int aip_schema_version (void);
//  The file's schema version, or -1 (and err) if it is not a database or is
//  newer than this code: reads only, so a refused file stays byte-exact
int aip_schema_version_check (sqlite3 *db, char *err, size_t errlen);
//  Bring db up to date. 0, or -1 with err filled (nothing half-applied).
int aip_schema_migrate (sqlite3 *db, char *err, size_t errlen);

void aip_schema_test (bool verbose);

#endif
