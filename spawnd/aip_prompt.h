/*  aip_prompt.h — the prompt an invited AI tool reads on stdin.

    The room's recent history, each line attributed (name, tool, type),
    fenced between two marker lines that carry a random nonce (so a message
    cannot fake the end of the fence) and declared untrusted; then the
    request of whoever invited the tool (--context). The total is capped:
    the oldest history goes first, a long message is cut with a marker. */
#ifndef AIP_PROMPT_H_INCLUDED
#define AIP_PROMPT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#include "aip_codec.h"
#include "aip_roomkey.h"

//  A history message as the prompt shows it
typedef struct {
    const aip_obj_t *map;       //  the message as the store sent it (borrowed)
    char *content;              //  its content decrypted (an encrypted room's), or NULL
    size_t content_len;         //  ... its length
} aip_prompt_msg_t;

//  What a tool's resumed session has seen of the room (its session.get row)
typedef struct {
    const char *seen_ts;        //  created_at of the newest message it was sent, or NULL
    const char *seen_id;        //  ... that message's id, or NULL
    const char *answer_id;      //  its own last answer, or NULL
} aip_prompt_seen_t;

typedef struct {
    const char *tool;           //  who is asked
    const char *room_id;
    const char *room_name;      //  or NULL
    const aip_prompt_msg_t *messages;   //  the history, oldest first
    size_t count;               //  ... how many messages
    const char *context;        //  the inviter's request, or NULL
    size_t max;                 //  cap on the whole prompt, bytes
    bool resumed;               //  the tool's own session has the instructions
                                //  already: a short reminder heads the new lines
} aip_prompt_args_t;

//  The history to show from msg.list's messages (an array of maps, oldest
//  first, borrowed: it must outlive the result): all of them, or with seen
//  only those after what the session has seen, less its own answer; with
//  key (an encrypted room), their content decrypted. A new array of *count
//  messages (aip_prompt_history_free), or NULL when out of memory.
aip_prompt_msg_t *aip_prompt_history (const aip_obj_t *messages, const aip_prompt_seen_t *seen,
                                      const aip_roomkey_t *key, size_t *count);
//  Free a history, wiping the decrypted text
void aip_prompt_history_free (aip_prompt_msg_t **history_p, size_t count);

//  A new prompt (caller frees); *len its length; *dropped how many old
//  messages did not fit
char *aip_prompt_build (const aip_prompt_args_t *args, size_t *len, size_t *dropped);

void aip_prompt_test (bool verbose);

#endif
