// sdk_client.mjs — drives `ai-peer mcp` with the official MCP TypeScript SDK
// client (@modelcontextprotocol/sdk from tests/node). One scenario per run:
//   node sdk_client.mjs <scenario>
// Environment: AIP_BIN_DIR (ai-peer), AI_PEERS_HOME, PATH (the fake AI tools),
// FAKE_AI_DIR. Prints one JSON line {"ok": true, ...facts} on success; any
// failed assertion exits non-zero with the reason on stderr.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';

const sdk = new URL('../node/node_modules/@modelcontextprotocol/sdk/dist/esm/', import.meta.url);
const { Client } = await import(new URL('client/index.js', sdk));
const { StdioClientTransport } = await import(new URL('client/stdio.js', sdk));
const { McpError, ErrorCode } = await import(new URL('types.js', sdk));

const BIN = path.join(process.env.AIP_BIN_DIR, 'ai-peer');
const HOST = hostname().replace(/[^A-Za-z0-9_-]/g, '-');
const TOOLS = ['room_create', 'room_list', 'room_join', 'room_delete', 'chat_send', 'chat_read',
    'wait_messages', 'invite', 'quick', 'discuss', 'export', 'discover', 'jobs', 'job_wait'];

function cli(...args) {
    const out = execFileSync(BIN, args, { env: process.env, encoding: 'utf8' });
    const doc = JSON.parse(out);
    assert.equal(doc.ok, true, out);
    return doc.data;
}

async function connect(name = 'claude-code', args = ['mcp']) {
    // the server's stderr (its log, a sanitizer's report) goes to ours
    const transport = new StdioClientTransport({ command: BIN, args, env: process.env,
                                                 stderr: 'inherit' });
    const client = new Client({ name, version: '1.0.0' });
    await client.connect(transport);
    return { client, transport };
}

// A successful tool call: the data, checked to be the same in both forms
async function ok(client, name, args = {}, options = {}) {
    const result = await client.callTool({ name, arguments: args }, undefined, options);
    assert.notEqual(result.isError, true, `${name} failed: ${JSON.stringify(result.content)}`);
    assert.equal(result.content[0].type, 'text');
    assert.deepEqual(JSON.parse(result.content[0].text), result.structuredContent);
    return result.structuredContent;
}

// A failing tool call: its message
async function toolError(client, name, args = {}) {
    const result = await client.callTool({ name, arguments: args });
    assert.equal(result.isError, true, `${name} should fail: ${JSON.stringify(result)}`);
    assert.equal(result.content[0].type, 'text');
    assert.ok(result.content[0].text.length > 0);
    return result.content[0].text;
}

const scenarios = {
    // Every tool once, through the SDK (the fake AI tools answer)
    async tools() {
        const { client } = await connect();
        const version = client.getServerVersion();
        assert.equal(version.name, 'ai-peer');
        const { tools } = await client.listTools();
        assert.deepEqual(tools.map(t => t.name).sort(), [...TOOLS].sort());
        for (const t of tools) {
            assert.equal(t.inputSchema.type, 'object', t.name);
            assert.equal(t.outputSchema.type, 'object', t.name);
            assert.ok(t.description.length > 10, t.name);
        }
        const room = await ok(client, 'room_create', { name: 'mcp room' });
        assert.match(room.id, /^room-[0-9a-f]{12}$/);
        assert.equal(room.name, 'mcp room');
        const list = await ok(client, 'room_list');
        assert.ok(list.rooms.some(r => r.id === room.id));
        const sent = await ok(client, 'chat_send', { room: room.id, message: 'hello from MCP ✓' });
        // posted as the client's AI peer, never as the human
        assert.equal(sent.sent.peer_id, `${HOST}-claude-code`);
        assert.equal(sent.sent.peer_type, 'ai');
        assert.equal(sent.sent.content, 'hello from MCP ✓');
        const read = await ok(client, 'chat_read', { room: room.id, n: 5 });
        assert.equal(read.relay_ok, true);
        assert.ok(read.messages.some(m => m.id === sent.sent.id));
        const md = await ok(client, 'export', { room: room.id });
        assert.match(md.markdown, /hello from MCP ✓/);
        const js = await ok(client, 'export', { room: room.id, format: 'json' });
        assert.equal(js.room.id, room.id);
        const found = await ok(client, 'discover');
        assert.ok(found.discovered.some(d => ['claude', 'claude-code'].includes(d.tool)),
                  JSON.stringify(found));
        const answer = await ok(client, 'invite', { tool: 'claude-code', room: room.id,
                                                    timeout: 30 });
        assert.equal(answer.tool, 'claude-code');
        assert.match(answer.response, /claude answers/);
        const quick = await ok(client, 'quick', { question: 'two tools?', tools: ['claude-code', 'codex'],
                                                  timeout: 30 });
        assert.deepEqual(Object.keys(quick.responses).sort(), ['claude-code', 'codex']);
        assert.match(quick.responses.codex, /codex answers/);
        // the question is the AI peer's too
        assert.equal(quick.conversation.find(m => m.content === 'two tools?').peer_id,
                     `${HOST}-claude-code`);
        const talk = await ok(client, 'discuss', { tools: ['claude-code', 'codex'], rounds: 1,
                                                   room: room.id, timeout: 30 });
        assert.equal(talk.total_invites, 2);
        const job = await ok(client, 'invite', { tool: 'codex', room: room.id, async: true });
        assert.match(job.job, /^job-/);
        const jobs = await ok(client, 'jobs');
        assert.ok(jobs.jobs.some(j => j.id === job.job));
        const done = await ok(client, 'job_wait', { job: job.job, timeout: 30 });
        assert.match(done.response, /codex answers/);
        const joinError = await toolError(client, 'room_join', { room: room.id });
        assert.match(joinError, /--relay/);
        const deleted = await ok(client, 'room_delete', { room: room.id });
        assert.equal(deleted.deleted, room.id);
        await client.close();
        return { room: room.id, tools: tools.length };
    },

    // Tool errors: isError with the CLI's message; unknown tools: -32602
    async errors() {
        const { client } = await connect('codex-mcp-client');
        const room = await ok(client, 'room_create', { name: 'errors' });
        assert.match(await toolError(client, 'chat_send', { room: room.id }), /message/);
        assert.match(await toolError(client, 'chat_send', { room: 'room-000000000000',
                                                            message: 'x' }), /not found/);
        assert.match(await toolError(client, 'chat_read', { room: 'bad room!' }),
                     /Invalid room id/);
        assert.match(await toolError(client, 'chat_read', { room: room.id, n: 'five' }),
                     /whole number/);
        assert.match(await toolError(client, 'chat_send', { room: room.id, message: 'x',
                                                            color: 'red' }),
                     /unknown argument 'color'/);
        assert.match(await toolError(client, 'chat_send', { room: room.id, message: '   ' }),
                     /empty/);
        assert.match(await toolError(client, 'invite', { tool: 'nosuchtool', room: room.id }),
                     /nosuchtool/);
        await assert.rejects(client.callTool({ name: 'no_such_tool', arguments: {} }),
                             e => e instanceof McpError && e.code === ErrorCode.InvalidParams);
        // codex-mcp-client is the codex peer
        const sent = await ok(client, 'chat_send', { room: room.id, message: 'from codex' });
        assert.equal(sent.sent.peer_id, `${HOST}-codex`);
        await client.close();
        return {};
    },

    // The CLI's session and budget flags, with the flags' bounds: invite's
    // fresh, sessions and max_cost, quick's and discuss's max_tokens
    async budgets() {
        const { client } = await connect();
        const { tools } = await client.listTools();
        const schema = Object.fromEntries(tools.map(t => [t.name, t.inputSchema.properties]));
        assert.deepEqual(schema.invite.fresh.type, 'boolean');
        assert.deepEqual(schema.invite.sessions.type, 'boolean');
        const cost = schema.invite.max_cost;
        assert.deepEqual([cost.type, cost.exclusiveMinimum, cost.maximum], ['number', 0, 10000]);
        for (const name of ['quick', 'discuss']) {
            const t = schema[name].max_tokens;
            assert.deepEqual([t.type, t.minimum, t.maximum], ['integer', 1, 1e12], name);
        }
        const calls = () => {
            const file = path.join(process.env.FAKE_AI_DIR, 'claude.calls.jsonl');
            return readFileSync(file, 'utf8').trim().split('\n').map(l => JSON.parse(l));
        };
        const lastArgv = () => calls().at(-1).argv;
        const room = await ok(client, 'room_create', { name: 'budgets' });
        await ok(client, 'chat_send', { room: room.id, message: 'what does it cost?' });
        // max_cost reaches claude as its own flag, as the CLI's --max-cost does
        let answer = await ok(client, 'invite', { tool: 'claude', room: room.id, max_cost: 0.5,
                                                  timeout: 30 });
        assert.match(answer.response, /claude answers/);
        let argv = lastArgv();
        assert.equal(argv[argv.indexOf('--max-budget-usd') + 1], '0.5', JSON.stringify(argv));
        // the next turn resumes claude's session; fresh starts a new one
        await ok(client, 'invite', { tool: 'claude', room: room.id, max_cost: 2, timeout: 30 });
        argv = lastArgv();
        assert.ok(argv.includes('--resume'), JSON.stringify(argv));
        assert.equal(argv[argv.indexOf('--max-budget-usd') + 1], '2', JSON.stringify(argv));
        await ok(client, 'invite', { tool: 'claude', room: room.id, fresh: true, timeout: 30 });
        argv = lastArgv();
        assert.ok(!argv.includes('--resume'), JSON.stringify(argv));
        assert.ok(!argv.includes('--max-budget-usd'), JSON.stringify(argv));
        // a password room keeps no session unless sessions is true
        const sealed = await ok(client, 'room_create', { name: 'sealed', password: 'pw' });
        for (let i = 0; i < 2; i++)
            await ok(client, 'invite', { tool: 'claude', room: sealed.id, timeout: 30 });
        assert.ok(!lastArgv().includes('--resume'), JSON.stringify(lastArgv()));
        for (let i = 0; i < 2; i++)
            await ok(client, 'invite', { tool: 'claude', room: sealed.id, sessions: true,
                                         timeout: 30 });
        assert.ok(lastArgv().includes('--resume'), JSON.stringify(lastArgv()));
        // out of the flags' bounds, or of the wrong kind: refused, naming the argument
        const before = calls().length;
        for (const bad of [0, -1, 10000.5, 1e-9, '0.5', true])
            assert.match(await toolError(client, 'invite', { tool: 'claude', room: room.id,
                                                             max_cost: bad }),
                         /'max_cost' must be a number more than 0 and at most 10000/,
                         JSON.stringify(bad));
        assert.match(await toolError(client, 'invite', { tool: 'claude', room: room.id,
                                                         fresh: 'yes' }),
                     /'fresh' must be true or false/);
        const asked = { quick: { question: 'q' }, discuss: { context: 'q' } };
        for (const name of ['quick', 'discuss'])
            for (const bad of [0, 1e13, 2.5])
                assert.match(await toolError(client, name, { ...asked[name], max_tokens: bad,
                                                             tools: ['claude', 'codex'] }),
                             /'max_tokens' must be a whole number from 1 to 1000000000000/);
        assert.equal(calls().length, before, 'a refused call ran a tool');
        // the budgets work as the CLI's
        const quick = await ok(client, 'quick', { question: 'budget?', tools: ['claude', 'codex'],
                                                  max_tokens: 1, timeout: 30 });
        assert.equal(quick.max_tokens, 1);
        assert.ok(quick.over_budget.length >= 1, JSON.stringify(quick.over_budget));
        const talk = await ok(client, 'discuss', { tools: ['claude', 'codex'], rounds: 2,
                                                   context: 'spend little', max_tokens: 1,
                                                   timeout: 30 });
        assert.equal(talk.max_tokens, 1);
        assert.equal(talk.total_invites, 1);
        assert.match(talk.stopped, /token budget of 1 reached after 1 invites/);
        await client.close();
        return {};
    },

    // A long invite reports progress (elapsed time, and the streamed text):
    // a client that resets its timeout on progress waits past its timeout
    async progress() {
        const { client } = await connect();
        const room = await ok(client, 'room_create', { name: 'progress' });
        const seen = [];
        const answer = await ok(client, 'invite', { tool: 'claude', room: room.id, timeout: 60 },
                                { onprogress: p => seen.push(p), timeout: 1500,
                                  resetTimeoutOnProgress: true, maxTotalTimeout: 60000 });
        assert.match(answer.response, /part 7 of a streamed answer/);
        assert.ok(seen.length >= 2, `progress notifications: ${JSON.stringify(seen)}`);
        for (let i = 1; i < seen.length; i++)
            assert.ok(seen[i].progress > seen[i - 1].progress, JSON.stringify(seen));
        assert.ok(seen.some(p => /part \d of a streamed answer/.test(p.message || '')),
                  JSON.stringify(seen));
        await client.close();
        return { notifications: seen.length };
    },

    // Cancelling a call kills its invite (the job ends "cancelled")
    async cancel() {
        const { client } = await connect();
        const room = await ok(client, 'room_create', { name: 'cancel' });
        const controller = new AbortController();
        let progressed;
        const first = new Promise(resolve => { progressed = resolve; });
        const call = client.callTool({ name: 'invite', arguments: { tool: 'claude', room: room.id,
                                                                     timeout: 120 } },
                                     undefined, { signal: controller.signal,
                                                  onprogress: () => progressed() });
        await first;
        const running = cli('jobs').jobs.filter(j => j.state === 'running');
        assert.equal(running.length, 1, JSON.stringify(running));
        controller.abort('changed my mind');
        await assert.rejects(call);
        const deadline = Date.now() + 20000;
        let state;
        while (Date.now() < deadline) {
            state = cli('jobs').jobs.find(j => j.id === running[0].id).state;
            if (state === 'cancelled')
                break;
            await new Promise(r => setTimeout(r, 50));
        }
        assert.equal(state, 'cancelled');
        // the server goes on serving
        await ok(client, 'room_list');
        await client.close();
        return { job: running[0].id };
    },

    // wait_messages: woken by a message another process posts; each message
    // delivered once; chat_read moves the cursor too
    async wait() {
        const { client } = await connect('gemini-cli');
        const room = await ok(client, 'room_create', { name: 'wait' });
        let sender;
        const started = Date.now();
        const got = await ok(client, 'wait_messages', { room: room.id, timeout_s: 60 }, {
            onprogress: () => {
                // it is waiting: now another process posts
                if (!sender)
                    sender = cli('chat', room.id, 'ping from another process');
            }, timeout: 70000 });
        assert.ok(sender, 'the call returned before it waited');
        assert.equal(got.peer, `${HOST}-gemini`);
        assert.equal(got.messages.length, 1, JSON.stringify(got));
        assert.equal(got.messages[0].id, sender.sent.id);
        assert.equal(got.messages[0].content, 'ping from another process');
        assert.equal(got.timed_out, false);
        // once: nothing left
        const again = await ok(client, 'wait_messages', { room: room.id, timeout_s: 1 });
        assert.equal(again.messages.length, 0);
        assert.equal(again.timed_out, true);
        // a message read with chat_read is not delivered again
        cli('chat', room.id, 'read me with chat_read');
        const read = await ok(client, 'chat_read', { room: room.id });
        assert.ok(read.messages.some(m => m.content === 'read me with chat_read'));
        const after = await ok(client, 'wait_messages', { timeout_s: 0 });
        assert.equal(after.messages.length, 0, JSON.stringify(after));
        // there already: at once
        cli('chat', room.id, 'already there');
        const t0 = Date.now();
        const now = await ok(client, 'wait_messages', { timeout_s: 60 });
        assert.equal(now.messages[0].content, 'already there');
        assert.ok(Date.now() - t0 < 5000);
        await client.close();
        return { waited_ms: Date.now() - started };
    },
};

const name = process.argv[2];
if (!scenarios[name]) {
    console.error(`unknown scenario ${name}: ${Object.keys(scenarios).join(', ')}`);
    process.exit(2);
}
try {
    const facts = await scenarios[name]();
    console.log(JSON.stringify({ ok: true, scenario: name, ...facts }));
    process.exit(0);
} catch (e) {
    console.error(e && e.stack ? e.stack : String(e));
    process.exit(1);
}
