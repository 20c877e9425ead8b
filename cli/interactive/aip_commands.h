/*  aip_commands.h — what a typed line does in chat -i: a /command from the
    table, `@tool question` (posted, then the tool invited), or a message.

    One table row says everything about a command: what is typed, whether
    arguments follow, its handler, and its line in /help. */
#ifndef AIP_COMMANDS_H_INCLUDED
#define AIP_COMMANDS_H_INCLUDED

#include "aip_chat.h"

//  Run one line as typed (trimmed here, so it may be changed)
void aip_commands_run (aip_chat_t *chat, char *line);
//  The /help text, one line per listed command
const char *aip_commands_help (void);

void aip_commands_test (bool verbose);

#endif
