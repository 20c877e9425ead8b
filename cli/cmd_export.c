/*  cmd_export.c — ai-peer export: a room as Markdown or JSON, the
    original's layout. */
#include "cli.h"
#include "aip_term.h"

#include <sodium.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *
s_str (json_t *object, const char *key, const char *dflt)
{
    const char *s = json_string_value (json_object_get (object, key));
    return s ? s : dflt;
}

//  A string field of a decoded message as a length + pointer (dflt if absent)
static const char *
s_field (const aip_obj_t *m, const char *key, const char *dflt, int *len)
{
    size_t n;
    const char *s = aip_obj_str (aip_obj_get (m, key), &n);
    if (!s) {
        *len = (int) strlen (dflt);
        return dflt;
    }
    *len = (int) n;
    return s;
}

//  n with thousands separators: 1234567 -> "1,234,567"
static void
s_thousands (long long n, char *buf, size_t size)
{
    char digits [32];
    int len = snprintf (digits, sizeof digits, "%lld", n);
    size_t at = 0;
    for (int i = 0; i < len && at + 2 < size; i++) {
        if (i > 0 && digits [i - 1] != '-' && (len - i) % 3 == 0)
            buf [at++] = ',';
        buf [at++] = digits [i];
    }
    buf [at] = 0;
}

//  The usage line under an AI answer, from its metadata.usage, e.g.
//  "_claude-code · 1,234 in / 567 out · $0.0123 · 4.2 s_"; false when the
//  answer reported no usage
static bool
s_usage_line (const aip_obj_t *m, const char *tool, int tool_len, char *line, size_t size)
{
    size_t meta_len;
    const char *meta = aip_obj_str (aip_obj_get (m, "metadata"), &meta_len);
    if (!meta || !memmem (meta, meta_len, "\"usage\"", 7))
        return false;
    json_t *root = json_loadb (meta, meta_len, 0, NULL);
    json_t *usage = json_object_get (root, "usage");
    if (!json_is_object (usage)) {
        json_decref (root);
        return false;
    }
    //  Tool names are ids: anything else is not printed
    if (tool_len == 0 || tool_len > AIP_MAX_ID || !aip_id_valid (tool, (size_t) tool_len)) {
        tool = "AI";
        tool_len = 2;
    }
    json_t *sum = cli_usage_new ();
    cli_usage_add (sum, usage);
    char in [32], out [32];
    s_thousands ((long long) json_integer_value (json_object_get (sum, "input_tokens")), in,
                 sizeof in);
    s_thousands ((long long) json_integer_value (json_object_get (sum, "output_tokens")), out,
                 sizeof out);
    int len = snprintf (line, size, "_%.*s · %s in / %s out", tool_len, tool, in, out);
    json_t *cost = json_object_get (sum, "cost_usd");
    if (cost && len >= 0 && (size_t) len < size)
        len += snprintf (line + len, size - (size_t) len, " · $%.4f", json_number_value (cost));
    json_int_t ms = json_integer_value (json_object_get (sum, "duration_ms"));
    //  Older answers: the invite's elapsed time in the metadata
    double elapsed = json_number_value (json_object_get (root, "elapsed_s"));
    if (ms == 0 && elapsed > 0 && elapsed * 1000 <= AIP_USAGE_MAX_DURATION_MS)
        ms = (json_int_t) (elapsed * 1000);
    if (ms > 0 && len >= 0 && (size_t) len < size)
        len += snprintf (line + len, size - (size_t) len, " · %.1f s", (double) ms / 1000.0);
    if (len >= 0 && (size_t) len + 2 <= size)
        snprintf (line + len, size - (size_t) len, "_");
    json_decref (sum);
    json_decref (root);
    return true;
}

//  ---------------------------------------------------------------------
//  Markdown that no message can restructure
//
//  Names, tools, times and system lines are one-line fields: escape
//  sequences and newlines neutralised (aip_term_clean_line), Markdown
//  punctuation backslash-escaped, so "**" or "[" in a name cannot end the
//  speaker's bold or start a link. A body is written as it is when it is
//  plain text (the original's layout); one that could start a Markdown
//  block — a heading, a speaker-like "**" line, a list, a quote, a fence,
//  HTML, a setext underline, indented code — is fenced with more backticks
//  than any run inside it, so nothing in it can close the fence, and it
//  reads as the Markdown source it is.

static void
s_md_inline (FILE *out, const char *s, size_t len)
{
    size_t clean_len;
    char *clean = aip_term_clean_line (s, len, &clean_len);
    if (!clean)
        return;
    for (size_t i = 0; i < clean_len; i++) {
        if (clean [i] && strchr ("\\`*_[]<>#|~!&", clean [i]))
            fputc ('\\', out);
        fputc (clean [i], out);
    }
    free (clean);
}

static void
s_md_inline_str (FILE *out, const char *s)
{
    s_md_inline (out, s, strlen (s));
}

//  True if the (cleaned) body can stand as it is: no line starts a block
//  other than a paragraph, and no HTML
static bool
s_md_plain (const char *s, size_t len)
{
    if (memchr (s, '<', len))
        return false;
    const char *line = s, *end = s + len;
    while (line < end) {
        if (*line && strchr (" \t#*-+=_>`~|[", *line))
            return false;
        const char *nl = (const char *) memchr (line, '\n', (size_t) (end - line));
        line = nl ? nl + 1 : end;
    }
    return true;
}

static void
s_md_body (FILE *out, const char *content, size_t len)
{
    size_t clean_len;
    char *clean = aip_term_clean (content, len, &clean_len);
    if (!clean)
        return;
    if (s_md_plain (clean, clean_len))
        fwrite (clean, 1, clean_len, out);
    else {
        size_t fence = cli_fence_len (clean, clean_len);
        for (size_t i = 0; i < fence; i++)
            fputc ('`', out);
        fputc ('\n', out);
        fwrite (clean, 1, clean_len, out);
        if (clean_len && clean [clean_len - 1] != '\n')
            fputc ('\n', out);
        for (size_t i = 0; i < fence; i++)
            fputc ('`', out);
    }
    free (clean);
}

//  The Markdown being written, page by page
typedef struct {
    FILE *out;                  //  memstream
    json_t *room;               //  the room row
    cli_room_t *keys;           //  its key, if encrypted
    json_t *names;              //  display names two peers share (cli_name_shared)
} s_render_t;

//  A speaker's name, and its peer id when another peer has the same name
//  (or the exported text would pass one for the other)
static void
s_md_speaker (FILE *out, json_t *names, const char *name, int name_len, const char *peer_id,
              int id_len, const char *tool, int tool_len)
{
    char n [AIP_MAX_NAME + 1], id [AIP_MAX_ID + 1];
    snprintf (n, sizeof n, "%.*s", name_len, name);
    snprintf (id, sizeof id, "%.*s", id_len, peer_id);
    bool shared = cli_name_shared (names, n, id) && strcmp (n, id) != 0;
    s_md_inline (out, name, (size_t) name_len);
    if (shared || tool_len) {
        fputs (" (", out);
        if (shared)
            s_md_inline (out, peer_id, (size_t) id_len);
        if (shared && tool_len)
            fputs (", ", out);
        if (tool_len)
            s_md_inline (out, tool, (size_t) tool_len);
        fputc (')', out);
    }
}

static int
s_markdown_page (cli_t *cli, const aip_obj_t *page, void *arg)
{
    s_render_t *r = (s_render_t *) arg;
    FILE *out = r->out;
    json_t *room = r->room;
    cli_room_t *keys = r->keys;
    for (size_t k = 0; k < aip_obj_size (page); k++) {
        const aip_obj_t *m = aip_obj_at (page, k);
        int id_len, name_len, tool_len, time_len, text_len, type_len;
        const char *peer_id = s_field (m, "peer_id", "?", &id_len);
        const char *name = s_field (m, "peer_name", "", &name_len);
        if (!aip_obj_is_str (aip_obj_get (m, "peer_name"))) {
            name = peer_id;
            name_len = id_len;
        }
        const char *tool = s_field (m, "peer_tool", "", &tool_len);
        const char *ts = s_field (m, "created_at", "", &time_len);
        const char *content = s_field (m, "content", "", &text_len);
        const char *type = s_field (m, "type", "message", &type_len);
        //  Encrypted rooms export plaintext: what a reader sees
        char *revealed = NULL;
        if (keys->encrypted) {
            char mid [AIP_MAX_ID + 1], sender [AIP_MAX_ID + 1], kind [16];
            size_t rlen;
            aip_obj_get_str (m, "id", mid, sizeof mid, "");
            aip_obj_get_str (m, "peer_id", sender, sizeof sender, "");
            aip_obj_get_str (m, "type", kind, sizeof kind, "message");
            revealed = aip_roomkey_reveal (&keys->key, s_str (room, "id", ""), mid, sender,
                                           kind, content, (size_t) text_len, &rlen);
            if (revealed) {
                content = revealed;
                text_len = (int) rlen;
            }
        }
        //  "2026-11-23T21:29:49.953123+00:00" -> "2026-11-23 21:29:49"
        char when [20];
        snprintf (when, sizeof when, "%.*s", time_len < 19 ? time_len : 19, ts);
        char *t = strchr (when, 'T');
        if (t)
            *t = ' ';
        if (type_len == 6 && memcmp (type, "system", 6) == 0) {
            fputc ('*', out);
            s_md_speaker (out, r->names, name, name_len, peer_id, id_len, NULL, 0);
            fputc (' ', out);
            s_md_inline (out, content, (size_t) text_len);
            fputs ("* — ", out);
            s_md_inline_str (out, when);
            fputc ('\n', out);
        }
        else {
            fputs ("**", out);
            s_md_speaker (out, r->names, name, name_len, peer_id, id_len, tool, tool_len);
            fputs ("** [", out);
            s_md_inline_str (out, when);
            fputs ("]:\n\n", out);
            s_md_body (out, content, (size_t) text_len);
            fputc ('\n', out);
            char usage [256];
            if (s_usage_line (m, tool, tool_len, usage, sizeof usage))
                fprintf (out, "\n%s\n", usage);
        }
        fputc ('\n', out);
        free (revealed);
    }
    return 0;
}

//  The whole room as Markdown (the original's layout); *count messages
static char *
s_markdown (cli_t *cli, json_t *room, json_t *peers, cli_room_t *keys, size_t *size,
            size_t *count)
{
    char *text = NULL;
    FILE *out = open_memstream (&text, size);
    if (!out)
        return NULL;
    char created [20];
    snprintf (created, sizeof created, "%.19s", s_str (room, "created_at", ""));
    fputs ("# ", out);
    s_md_inline_str (out, s_str (room, "name", ""));
    fputs ("\n\n- **Room**: `", out);
    s_md_inline_str (out, s_str (room, "id", ""));
    fputs ("`\n- **Mode**: ", out);
    s_md_inline_str (out, s_str (room, "mode", "local"));
    fputs ("\n- **Created**: ", out);
    s_md_inline_str (out, created);
    fprintf (out, "\n- **Participants**: ");
    size_t i;
    json_t *p;
    json_t *names = cli_room_names (cli, s_str (room, "id", ""), peers);
    json_array_foreach (peers, i, p) {
        const char *tool = s_str (p, "tool", NULL);
        const char *name = s_str (p, "name", "?");
        const char *pid = s_str (p, "id", "?");
        fputs (i ? ", " : "", out);
        s_md_inline_str (out, name);
        fputs (" (", out);
        if (cli_name_shared (names, name, pid) && strcmp (name, pid) != 0) {
            s_md_inline_str (out, pid);
            fputs (", ", out);
        }
        s_md_inline_str (out, tool && *tool ? tool : s_str (p, "type", "?"));
        fputc (')', out);
    }
    fprintf (out, "\n\n---\n\n");
    s_render_t render = { .out = out, .room = room, .keys = keys, .names = names };
    int rc = cli_each_page (cli, s_str (room, "id", ""), s_markdown_page, &render, count);
    json_decref (names);
    if (fclose (out) != 0 || rc) {
        free (text);
        return NULL;
    }
    //  The original joins lines with "\n": no newline after the last one
    if (*size > 0 && text [*size - 1] == '\n')
        text [--*size] = 0;
    return text;
}

int
cmd_export (cli_t *cli, int argc, char **argv)
{
    enum { OPT_FORMAT, OPT_OUTPUT, OPT_END };
    cli_opt_t opts [OPT_END + 1] = {
        [OPT_FORMAT] = CLI_OPT_VALUE ("--format"),
        [OPT_OUTPUT] = CLI_OPT_VALUE ("--output"),
    };
    char *pos [1];
    int npos;
    if (cli_parse (cli, "export", argc, argv, opts, pos, 1, &npos))
        return -1;
    if (npos < 1)
        return cli_fail (cli, "Usage: ai-peer export <room-id> [--format md|json] [--output file]");
    const char *room_id = pos [0];
    const char *format = opts [OPT_FORMAT].present ? opts [OPT_FORMAT].value : "md";
    if (strcmp (format, "md") != 0 && strcmp (format, "json") != 0)
        return cli_fail (cli, "--format must be 'md' or 'json', not '%.32s'", format);
    if (cli_check_room_id (cli, room_id))
        return -1;

    json_t *room = NULL, *peers = NULL, *data = NULL;
    cli_room_t keys;
    int rc = -1;
    if (cli_room_open (cli, room_id, &keys))
        goto cleanup;
    uint64_t id = cli_request (cli, AIP_OP_ROOM_GET, 1);
    aip_pack_kstr (cli->pk, "id", room_id);
    if (cli_call (cli, id, &room))
        goto cleanup;
    id = cli_request (cli, AIP_OP_ROOM_PEERS, 1);
    aip_pack_kstr (cli->pk, "id", room_id);
    if (cli_call (cli, id, &data))
        goto cleanup;
    peers = json_incref (json_object_get (data, "peers"));

    size_t count = 0;
    char *text = NULL;
    size_t size = 0;
    json_t *document = NULL;
    if (strcmp (format, "md") == 0) {
        text = s_markdown (cli, room, peers, &keys, &size, &count);
        if (!text) {
            if (!*cli->err)
                cli_fail (cli, "out of memory rendering the export");
            goto cleanup;
        }
    }
    else {
        json_t *messages;
        if (cli_messages_json (cli, room_id, &messages, &count))
            goto cleanup;
        cli_room_reveal_json (&keys, messages);
        document = json_pack ("{s:O, s:O, s:o}", "room", room, "peers", peers,
                              "messages", messages);
    }
    if (opts [OPT_OUTPUT].present) {
        const char *path = opts [OPT_OUTPUT].value;
        if (document) {
            text = aip_json_dumps (document);
            size = text ? strlen (text) : 0;
        }
        //  The owner's alone: a decrypted export holds a password room's text
        if (!text || aip_file_write_atomic (path, text, size, 0600))
            cli_fail (cli, "cannot write %s: %s", path, strerror (errno));
        else {
            cli->data = json_pack ("{s:s, s:s, s:i}", "exported", path, "format", format,
                                   "messages", (int) count);
            rc = 0;
        }
        free (text);
        json_decref (document);
        goto cleanup;
    }
    if (document)
        cli->data = document;
    else {
        cli->data = json_object ();
        json_object_set_new (cli->data, "markdown", json_stringn_nocheck (text, size));
        json_object_set_new (cli->data, "messages", json_integer ((json_int_t) count));
        free (text);
    }
    rc = 0;
cleanup:
    json_decref (room);
    json_decref (peers);
    json_decref (data);
    return rc;
}
