/*  aip_identity.h — the local human identity, identity.json, compatible
    with the original: {id, name, type:"human", tool:"cli", machine,
    peer_secret}; id = <hostname>-human-<username>. The secret is never
    printed; only signatures derived from it leave this machine. */
#ifndef AIP_IDENTITY_H_INCLUDED
#define AIP_IDENTITY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#include "aip_limits.h"

typedef struct {
    char id [AIP_MAX_NAME + 1];         //  peer id
    char name [AIP_MAX_NAME + 1];       //  display name
    char type [16];                     //  "human"
    char tool [AIP_MAX_NAME + 1];       //  "cli"
    char machine [AIP_MAX_NAME + 1];    //  host name
    char secret [AIP_MAX_NAME + 1];     //  peer_secret: 64 hex chars
} aip_identity_t;

//  Load home/identity.json, creating it (mode 0600) when missing, adding a
//  peer_secret when an old file has none. A corrupt file is an error, never
//  silently replaced (that would change this peer's secret).
int aip_identity_load (const char *home, aip_identity_t *self, char *err, size_t errlen);

//  The AI peer id for a tool on this machine: <hostname>-<tool>
void aip_identity_ai_peer_id (const char *tool, char *buf, size_t size);

void aip_identity_test (bool verbose);

#endif
