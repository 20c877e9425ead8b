/*  aip_prompt.h — the prompt an invited AI tool reads on stdin.

    The room's recent history, each line attributed (name, tool, type),
    fenced between two marker lines that carry a random nonce (so a message
    cannot fake the end of the fence) and declared untrusted; then the
    request of whoever invited the tool (--context). The total is capped:
    the oldest history goes first, a long message is cut with a marker. */
#ifndef AIP_PROMPT_H_INCLUDED
#define AIP_PROMPT_H_INCLUDED

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *tool;           //  who is asked
    const char *room_id;
    const char *room_name;      //  or NULL
    json_t *messages;           //  array of message objects, oldest first
    const char *context;        //  the inviter's request, or NULL
    size_t max;                 //  cap on the whole prompt, bytes
    bool resumed;               //  the tool's own session has the instructions
                                //  already: a short reminder heads the new lines
} aip_prompt_args_t;

//  A new prompt (caller frees); *len its length; *dropped how many old
//  messages did not fit
char *aip_prompt_build (const aip_prompt_args_t *args, size_t *len, size_t *dropped);

void aip_prompt_test (bool verbose);

#endif
