/*  aip_selftests.h — the list of module self-tests.
    One line per module: X(<noun>) runs aip_<noun>_test(verbose).
    tests/aip_selftest.c runs them; tests/tests.cmake makes one CTest each. */
#define AIP_SELFTESTS(X) \
    X(util)              \
    X(opts)              \
    X(term)              \
    X(codec)             \
    X(proto)             \
    X(event)             \
    X(json)              \
    X(home)              \
    X(daemon)            \
    X(identity)          \
    X(crypto)            \
    X(roomkey)           \
    X(peerurl)           \
    X(lan)               \
    X(client)            \
    X(worker)            \
    X(schema)            \
    X(storage)           \
    X(jobs)              \
    X(clients)           \
    X(supervisor)        \
    X(lanmode)           \
    X(broker)            \
    X(proc)              \
    X(adapter)           \
    X(prompt)            \
    X(answer)            \
    X(spawner)           \
    X(stream)            \
    X(stream_claude)     \
    X(stream_gemini)     \
    X(stream_codex)      \
    X(stream_opencode)   \
    X(relay)             \
    X(relay_http)        \
    X(relay_lan)         \
    X(relay_ws)          \
    X(jsonrpc)           \
    X(layout)            \
    X(screen)            \
    X(editor)            \
    X(feed)              \
    X(invites)           \
    X(chat)              \
    X(commands)          \
    X(webmode)           \
    X(markdown)          \
    X(webauth)           \
    X(webhttp)           \
    X(webpages)          \
    X(webrooms)          \
    X(webjob)            \
    X(webjobs)           \
    X(web)
