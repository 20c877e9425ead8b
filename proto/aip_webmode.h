/*  aip_webmode.h — what the web view (webd) keeps on disk, shared by the
    CLI (ai-peer web), brokerd (which starts webd) and webd itself:

      web/mode        the port while the web view is on: a broker started
                      again starts webd again, as lan/mode does for LAN mode
      run/web.token   the one-time login token (64 hex chars, mode 0600):
                      the URL ai-peer web prints carries it; webd trades it
                      for a session cookie once, and removes it
      run/web.json    {pid, port} once webd listens, or {pid, error} when it
                      cannot: what ai-peer web waits for */
#ifndef AIP_WEBMODE_H_INCLUDED
#define AIP_WEBMODE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  Hex characters of a login token or a session id (32 random bytes)
#define AIP_WEB_TOKEN_HEX 64

//  The remembered port (0: any free port), or -1 when the web view is off
int aip_webmode_get (const char *home);
//  Remember port (0..65535) as on; -1 turns the web view off
int aip_webmode_set (const char *home, int port);

//  A fresh login token, written to run/web.token (0600, replacing the one
//  before: only the newest URL logs in). 0 or -1 with err.
int aip_webmode_token_new (const char *home, char token [AIP_WEB_TOKEN_HEX + 1],
                           char *err, size_t errlen);
//  True when given is the current token and younger than
//  AIP_WEB_TOKEN_TTL_S; the token is removed then, so it works once
bool aip_webmode_token_take (const char *home, const char *given, size_t len);

void aip_webmode_test (bool verbose);

#endif
