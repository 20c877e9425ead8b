/*  aip_markdown.h — Markdown from peers and tools rendered as HTML that is
    safe to put in the page: cmark in its safe mode (raw HTML dropped,
    javascript:/vbscript:/file:/data: links emptied), input that is not
    UTF-8 repaired first. */
#ifndef AIP_MARKDOWN_H_INCLUDED
#define AIP_MARKDOWN_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

//  The HTML for text (caller frees), or NULL when out of memory
char *aip_markdown_render (const char *text, size_t len);

void aip_markdown_test (bool verbose);

#endif
