/*  aip_editor.h — the line being typed in chat -i: libedit's glue.

    libedit (its readline interface) keeps the half-typed line while other
    output is printed above it; lines arrive through a callback as the
    main loop feeds it the characters stdin has. libedit's readline state is
    the process's, so there is one editor at a time. */
#ifndef AIP_EDITOR_H_INCLUDED
#define AIP_EDITOR_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#define AIP_EDITOR_PROMPT "[You]: "

typedef struct _aip_editor_t aip_editor_t;

//  A whole line was typed (NULL: Ctrl-D); it is the editor's, valid (and
//  free to change) during the call
typedef void (aip_editor_line_fn) (void *arg, char *line);

//  Start editing on the terminal: the prompt is shown; NULL when an editor
//  exists already
aip_editor_t *aip_editor_new (aip_editor_line_fn *on_line, void *arg);
//  Stop editing (the prompt goes); safe to call twice, NULLs the pointer
void aip_editor_destroy (aip_editor_t **self_p);
//  stdin is readable: let libedit read what it has (may call on_line)
void aip_editor_read (aip_editor_t *self);
//  A fresh prompt for the next line. libedit's callback mode reports
//  Ctrl-D on an empty line (EOF) only at the first prompt of an installed
//  handler, so each line gets a new one.
void aip_editor_restart (aip_editor_t *self);
//  Remember a line for the arrow keys
void aip_editor_remember (aip_editor_t *self, const char *line);
//  Draw the prompt and the half-typed line again (after printing above it)
void aip_editor_redraw (void);
//  Where the cursor is in the half-typed line (bytes)
size_t aip_editor_cursor (void);

void aip_editor_test (bool verbose);

#endif
