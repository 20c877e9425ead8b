/*  cmd_export.c — ai-peer export: a room as Markdown or JSON, the
    original's layout. */
#include "cli.h"

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

//  "2026-11-23T21:29:49.953123+00:00" -> "2026-11-23 21:29:49"
static void
s_short_time (const char *iso, char *buf)
{
    snprintf (buf, 20, "%.19s", iso);
    char *t = strchr (buf, 'T');
    if (t)
        *t = ' ';
}

static char *
s_markdown (json_t *room, json_t *peers, json_t *messages, size_t *size)
{
    char *text = NULL;
    FILE *out = open_memstream (&text, size);
    if (!out)
        return NULL;
    fprintf (out, "# %s\n\n", s_str (room, "name", ""));
    fprintf (out, "- **Room**: `%s`\n", s_str (room, "id", ""));
    fprintf (out, "- **Mode**: %s\n", s_str (room, "mode", "local"));
    fprintf (out, "- **Created**: %.19s\n", s_str (room, "created_at", ""));
    fprintf (out, "- **Participants**: ");
    size_t i;
    json_t *p;
    json_array_foreach (peers, i, p) {
        const char *tool = s_str (p, "tool", NULL);
        fprintf (out, "%s%s (%s)", i ? ", " : "", s_str (p, "name", "?"),
                 tool && *tool ? tool : s_str (p, "type", "?"));
    }
    fprintf (out, "\n\n---\n\n");
    json_t *m;
    json_array_foreach (messages, i, m) {
        const char *name = s_str (m, "peer_name", s_str (m, "peer_id", "?"));
        const char *tool = s_str (m, "peer_tool", "");
        char ts [20];
        s_short_time (s_str (m, "created_at", ""), ts);
        json_t *content = json_object_get (m, "content");
        if (strcmp (s_str (m, "type", "message"), "system") == 0)
            fprintf (out, "*%s %s* — %s\n", name, s_str (m, "content", ""), ts);
        else {
            fprintf (out, "**%s%s%s%s** [%s]:\n\n", name, *tool ? " (" : "", tool,
                     *tool ? ")" : "", ts);
            fwrite (json_string_value (content), 1, json_string_length (content), out);
            fputc ('\n', out);
        }
        fputc ('\n', out);
    }
    if (fclose (out) != 0) {
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
    cli_opt_t opts [] = { { "--format", NULL, true, NULL, false },
                          { "--output", NULL, true, NULL, false },
                          { NULL, NULL, false, NULL, false } };
    char *pos [1];
    int npos;
    if (cli_parse (cli, "export", argc, argv, opts, pos, 1, &npos))
        return -1;
    if (npos < 1)
        return cli_fail (cli, "Usage: ai-peer export <room-id> [--format md|json] [--output file]");
    const char *room_id = pos [0];
    const char *format = opts [0].present ? opts [0].value : "md";
    if (strcmp (format, "md") != 0 && strcmp (format, "json") != 0)
        return cli_fail (cli, "--format must be 'md' or 'json', not '%.32s'", format);
    if (cli_check_room_id (cli, room_id))
        return -1;

    json_t *room = NULL, *peers = NULL, *messages = NULL, *data = NULL;
    int rc = -1;
    uint64_t id = cli_request (cli, AIP_OP_ROOM_GET, 1);
    aip_pack_kstr (cli->pk, "id", room_id);
    if (cli_call (cli, id, &room))
        goto cleanup;
    id = cli_request (cli, AIP_OP_ROOM_PEERS, 1);
    aip_pack_kstr (cli->pk, "id", room_id);
    if (cli_call (cli, id, &data))
        goto cleanup;
    peers = json_incref (json_object_get (data, "peers"));
    if (cli_fetch_all (cli, room_id, &messages))
        goto cleanup;
    size_t count = json_array_size (messages);

    char *text = NULL;
    size_t size = 0;
    json_t *document = NULL;
    if (strcmp (format, "md") == 0) {
        text = s_markdown (room, peers, messages, &size);
        if (!text) {
            cli_fail (cli, "out of memory rendering the export");
            goto cleanup;
        }
    }
    else {
        document = json_pack ("{s:O, s:O, s:O}", "room", room, "peers", peers,
                              "messages", messages);
    }
    if (opts [1].present) {
        const char *path = opts [1].value;
        if (document) {
            text = aip_json_dumps (document);
            size = text ? strlen (text) : 0;
        }
        if (!text || aip_file_write_atomic (path, text, size, 0644))
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
    json_decref (messages);
    json_decref (data);
    return rc;
}
