/*  aip_markdown.c — safe Markdown rendering with cmark. */
#include "aip_markdown.h"

#include <assert.h>
#include <cmark.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Safe mode is cmark's default since 0.29; it is named anyway so that an
//  older libcmark is safe too. Hard breaks: a chat line break is meant.
#define MARKDOWN_OPTIONS (CMARK_OPT_SAFE | CMARK_OPT_VALIDATE_UTF8 | CMARK_OPT_HARDBREAKS)

//  Raw HTML in a message is shown as what it is: text. Safe mode alone
//  would drop it silently ("<!-- raw HTML omitted -->"), and a reader
//  could not see that a peer sent a <script>.
static void
s_html_as_text (cmark_node *root)
{
    size_t count = 0, alloc = 16;
    cmark_node **found = (cmark_node **) malloc (alloc * sizeof *found);
    assert (found);
    cmark_iter *iter = cmark_iter_new (root);
    cmark_event_type event;
    while ((event = cmark_iter_next (iter)) != CMARK_EVENT_DONE) {
        cmark_node *node = cmark_iter_get_node (iter);
        cmark_node_type type = cmark_node_get_type (node);
        if (event == CMARK_EVENT_ENTER
        &&  (type == CMARK_NODE_HTML_INLINE || type == CMARK_NODE_HTML_BLOCK)) {
            if (count == alloc) {
                alloc *= 2;
                found = (cmark_node **) realloc (found, alloc * sizeof *found);
                assert (found);
            }
            found [count++] = node;
        }
    }
    cmark_iter_free (iter);
    //  Replaced after the walk: the iterator must not see the tree change
    for (size_t i = 0; i < count; i++) {
        bool block = cmark_node_get_type (found [i]) == CMARK_NODE_HTML_BLOCK;
        cmark_node *text = cmark_node_new (block ? CMARK_NODE_CODE_BLOCK : CMARK_NODE_TEXT);
        const char *literal = cmark_node_get_literal (found [i]);
        cmark_node_set_literal (text, literal ? literal : "");
        cmark_node_replace (found [i], text);
        cmark_node_free (found [i]);
    }
    free (found);
}

char *
aip_markdown_render (const char *text, size_t len)
{
    cmark_node *root = cmark_parse_document (text, len, MARKDOWN_OPTIONS);
    if (!root)
        return NULL;
    s_html_as_text (root);
    char *html = cmark_render_html (root, MARKDOWN_OPTIONS);
    cmark_node_free (root);
    return html;
}

void
aip_markdown_test (bool verbose)
{
    printf (" * aip_markdown: ");
    char *html = aip_markdown_render ("**bold** and `code`", 19);
    assert (html && strstr (html, "<strong>bold</strong>") && strstr (html, "<code>code</code>"));
    free (html);

    //  Raw HTML never passes: script, event handlers, iframes
    const char *hostile [] = {
        "<script>window.pwned=1</script>",
        "<img src=x onerror=\"window.pwned=1\">",
        "hello <b onmouseover=alert(1)>x</b>",
        "<iframe src=\"https://example.com\"></iframe>",
    };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile [0]; i++) {
        html = aip_markdown_render (hostile [i], strlen (hostile [i]));
        assert (html);
        assert (!strstr (html, "<script") && !strstr (html, "<img") && !strstr (html, "<b ")
                && !strstr (html, "<iframe"));
        //  ... and shows as the text it is
        assert (strstr (html, "&lt;"));
        free (html);
    }
    //  Dangerous link schemes are emptied, ordinary ones kept
    const char *links = "[a](javascript:alert(1)) [b](JaVaScRiPt:alert(1)) "
                        "[c](vbscript:x) [d](data:text/html,x) [e](https://example.com/)";
    html = aip_markdown_render (links, strlen (links));
    assert (html && !strstr (html, "javascript:") && !strstr (html, "JaVaScRiPt")
            && !strstr (html, "vbscript") && !strstr (html, "data:"));
    assert (strstr (html, "href=\"https://example.com/\""));
    free (html);
    //  Text is escaped
    html = aip_markdown_render ("a < b & \"c\"", 11);
    assert (html && strstr (html, "a &lt; b &amp; &quot;c&quot;"));
    free (html);
    //  Invalid UTF-8 is repaired, not passed on
    html = aip_markdown_render ("bad \xff\xfe bytes", 13);
    assert (html && !strchr (html, '\xff') && strstr (html, "\xef\xbf\xbd"));
    free (html);
    //  A code block keeps what is inside as text
    html = aip_markdown_render ("```\n<script>x</script>\n```", 26);
    assert (html && strstr (html, "&lt;script&gt;") && !strstr (html, "<script"));
    free (html);
    printf ("OK\n");
}
