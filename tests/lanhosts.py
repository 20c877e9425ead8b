"""lanhosts.py — separate machines on one LAN, made with Linux network namespaces.

A LanNet is a switch (a bridge in a namespace of its own) and hosts, each a
network namespace joined to the bridge by a veth pair:

    hostA  10.231.0.1/24  eth0 --+
    hostB  10.231.0.2/24  eth0 --+-- br0 (namespace aiplan-<pid>-<n>-sw)
    hostC  10.231.0.3/24  eth0 --+

Nothing touches the root namespace's interfaces or routes, so the subnet
cannot collide with the machine's own. Every host has lo up, a broadcast
address on eth0 (UDP broadcast crosses the bridge) and a default route via
a gateway that does not exist (as on a real LAN, nothing leaves it).

A command "on host A" runs as
    ip netns exec NS unshare --uts sh -c '<set hostname hostA> && exec "$@"' ...
with AI_PEERS_HOME set to host A's own home, so each host has its own host
name (identity ids are <hostname>-human-<user>) and its own daemon set: the
daemons ai-peer auto-starts inherit the namespaces.

LanNet.down() stops every host's daemons (`ai-peer daemon stop`, then SIGKILL
for what is left, found by AI_PEERS_HOME and by `ip netns pids`), deletes
the namespaces (which removes the veths and the bridge) and the temporary
directory. It runs at exit too, and on SIGTERM (ctest's timeout). Namespaces
of runs whose process is gone are swept at start.

Needs root, iproute2 (`ip netns`), util-linux (`unshare`); Capture needs
tcpdump. unavailable() says why the harness cannot run here.

Used by tests/test_lan.py; bench scripts can use it too:

    net = LanNet("AB").up()
    try:
        a, b = net.hosts
        print(a.ok("daemon", "start", "--lan"))
    finally:
        net.down()
"""
import atexit
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aiptest  # noqa: E402  (Result, daemon_pids, wait_until, AI_PEER)

SUBNET = "10.231.0"             # a /24 used only inside our namespaces
GATEWAY = SUBNET + ".254"       # the default route's gateway: nobody answers
PREFIX = "aiplan"               # every namespace we make is aiplan-<pid>-<n>-...
TMP = "/tmp"                    # homes live in TMP/aiplan<pid>-*: short ipc paths
IFNAME = "eth0"                 # each host's interface to the LAN
USERS = {"A": "alice", "B": "bob", "C": "carol", "D": "dave", "E": "erin"}


def _ip(*args, check=True):
    r = subprocess.run(["ip", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError("ip %s failed: %s" % (" ".join(args), r.stderr.strip()))
    return r


def netns_list():
    """The names of the network namespaces `ip netns` knows."""
    r = _ip("netns", "list", check=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def netns_pids(ns):
    r = _ip("netns", "pids", ns, check=False)
    return [int(p) for p in r.stdout.split() if p.isdigit()]


def unavailable(need_tcpdump=False):
    """Why LAN hosts cannot be made here (a string), or None."""
    if os.geteuid() != 0:
        return "LAN tests need root (network namespaces); run as root, as CI does"
    for tool in ("ip", "unshare") + (("tcpdump",) if need_tcpdump else ()):
        if not shutil.which(tool):
            return "LAN tests need %s (apt-get install %s)" % (
                tool, {"ip": "iproute2", "unshare": "util-linux"}.get(tool, tool))
    probe = "%s-%d-probe" % (PREFIX, os.getpid())
    r = _ip("netns", "add", probe, check=False)
    if r.returncode != 0:
        return "'ip netns add' does not work here: %s" % r.stderr.strip()
    _ip("netns", "del", probe, check=False)
    return None


def _kill_all(pids, sig=signal.SIGKILL):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def _stale(name, pattern):
    m = re.match(pattern, name)
    return bool(m) and int(m.group(1)) != os.getpid() and not aiptest.pid_alive(int(m.group(1)))


def sweep_stale():
    """Remove what runs killed outright (ctest's timeout) left: their
    namespaces, the processes in them, their temporary homes."""
    for ns in netns_list():
        if _stale(ns, r"^%s-(\d+)-" % PREFIX):
            _kill_all(netns_pids(ns))
            _ip("netns", "del", ns, check=False)
    for entry in os.listdir(TMP):
        if _stale(entry, r"^%s(\d+)-" % PREFIX):
            path = os.path.join(TMP, entry)
            if os.path.exists(os.path.join(path, "KEPT")):
                continue                            # AIP_KEEP_TMP: left for a look
            for home in os.listdir(path):
                _kill_all(aiptest.daemon_pids(os.path.join(path, home)))
            shutil.rmtree(path, ignore_errors=True)


class Host:
    """One machine: a network namespace, a host name, its own AI_PEERS_HOME."""

    def __init__(self, net, letter, index):
        self.net = net
        self.letter = letter
        self.name = "host" + letter                 # its host name (machine)
        self.ns = "%s-%s" % (net.prefix, letter)
        self.addr = "%s.%d" % (SUBNET, index)
        self.ifname = IFNAME
        self.user = USERS.get(letter, "user" + letter.lower())
        self.home = os.path.join(net.tmp, letter.lower())   # short: ipc paths ≤ 107 bytes
        self.env = dict(os.environ)
        for var in ("AI_PEER_RELAY", "AI_PEER_RELAY_WAIT_MS", "AI_PEER_PASSWORD",
                    "ZSYS_INTERFACE"):
            self.env.pop(var, None)
        self.env.update(AI_PEERS_HOME=self.home, USER=self.user, HOSTNAME=self.name)
        self.env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        self.env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self.env.setdefault("LSAN_OPTIONS", "suppressions=" + os.path.join(
            aiptest.SOURCE_DIR, "tests", "lsan.supp"))

    def __repr__(self):
        return "<%s %s %s>" % (self.name, self.addr, self.ns)

    @property
    def identity_id(self):
        return "%s-human-%s" % (self.name, self.user)

    #  -- running things on this host ------------------------------------

    def wrap(self, argv, uts=True):
        """argv as a command line that runs on this host."""
        argv = [str(a) for a in argv]
        if not uts:
            return ["ip", "netns", "exec", self.ns] + argv
        return ["ip", "netns", "exec", self.ns, "unshare", "--uts", "sh", "-c",
                'echo "$0" > /proc/sys/kernel/hostname && exec "$@"', self.name] + argv

    def run(self, *argv, env=None, input=None, timeout=aiptest.COMMAND_TIMEOUT):
        """Run any command on this host; a CompletedProcess (bytes)."""
        e = dict(self.env, **(env or {}))
        return subprocess.run(self.wrap(argv), input=input, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=e, timeout=timeout)

    def popen(self, *argv, env=None, uts=True, **kw):
        """Start a command on this host in a session of its own."""
        e = dict(self.env, **(env or {}))
        return subprocess.Popen(self.wrap(argv, uts=uts), env=e, start_new_session=True, **kw)

    def cli(self, *args, env=None, input=None, timeout=aiptest.COMMAND_TIMEOUT):
        """Run ai-peer on this host; an aiptest.Result (rc, doc, stdout, stderr)."""
        p = self.run(aiptest.AI_PEER, *args, env=env, input=input, timeout=timeout)
        r = aiptest.Result(args, p.returncode, p.stdout, p.stderr)
        r.host = self.name
        text = p.stderr.decode(errors="replace")
        for mark in aiptest.SANITIZER_MARKS:
            if mark in text:
                raise AssertionError("sanitizer report from ai-peer %r on %s:\n%s"
                                     % (args, self.name, text))
        return r

    def ok(self, *args, **kw):
        """ai-peer ARGS must succeed (exit 0, ok:true); its data."""
        r = self.cli(*args, **kw)
        if r.rc != 0 or not isinstance(r.doc, dict) or r.doc.get("ok") is not True \
                or "data" not in r.doc:
            raise AssertionError("on %s: ai-peer %s should succeed: %r"
                                 % (self.name, " ".join(map(str, args)), r))
        return r.doc["data"]

    def fail(self, *args, **kw):
        """ai-peer ARGS must fail cleanly (exit 1, ok:false, error); its error."""
        r = self.cli(*args, **kw)
        if r.rc != 1 or not isinstance(r.doc, dict) or r.doc.get("ok") is not False \
                or not isinstance(r.doc.get("error"), str) or not r.doc["error"].strip():
            raise AssertionError("on %s: ai-peer %s should fail with exit 1 and an error: %r"
                                 % (self.name, " ".join(map(str, args)), r))
        return r.doc["error"]

    def reaches(self, addr):
        """True if addr answers from this host (a TCP RST from a closed port will do)."""
        probe = ("import socket,sys\n"
                 "try:\n socket.create_connection((sys.argv[1], 9), timeout=1)\n"
                 "except ConnectionRefusedError: sys.exit(0)\n"
                 "except OSError: sys.exit(1)\n")
        return self.run(sys.executable, "-c", probe, addr, timeout=10).returncode == 0

    #  -- its daemons ----------------------------------------------------

    def daemon_pids(self):
        """{pid: name} of the daemons serving this host's home."""
        return aiptest.daemon_pids(self.home)

    def kill_daemons(self, sig=signal.SIGKILL, timeout=20):
        """Kill this host's whole daemon set at once (a crash, a power cut)."""
        pids = self.daemon_pids()
        _kill_all(pids, sig)
        aiptest.wait_until(lambda: not self.daemon_pids(), timeout,
                           "the daemons of %s to die" % self.name)
        return pids

    def stop_daemons(self):
        """`ai-peer daemon stop`, then SIGKILL whatever still serves this home."""
        if os.path.isdir(self.home):
            try:
                self.run(aiptest.AI_PEER, "daemon", "stop", timeout=30)
            except (subprocess.TimeoutExpired, OSError):
                pass
        _kill_all(self.daemon_pids())
        try:
            aiptest.wait_until(lambda: not self.daemon_pids(), 10,
                               "the daemons of %s to exit" % self.name)
        except AssertionError:
            pass

    def log(self):
        """This host's daemon.log (the daemons' own logs)."""
        try:
            with open(os.path.join(self.home, "daemon.log"), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""


_serial = 0


class LanNet:
    """A switch and hosts A, B, C... (letters) on 10.231.0.0/24."""

    def __init__(self, letters="ABC", tmp=None):
        global _serial
        _serial += 1
        self.tmp = tmp or tempfile.mkdtemp(prefix="%s%d-" % (PREFIX, os.getpid()), dir=TMP)
        self.prefix = "%s-%d-%d" % (PREFIX, os.getpid(), _serial)   # unique per net
        self.switch = self.prefix + "-sw"
        self.hosts = [Host(self, letter, i + 1) for i, letter in enumerate(letters)]
        self.made = []          # namespaces made, for down()
        self.is_up = False

    def host(self, letter):
        return next(h for h in self.hosts if h.letter == letter)

    def up(self):
        sweep_stale()
        atexit.register(self.down)
        _live.append(self)
        _install_sigterm()
        try:
            self._up()
        except BaseException:
            self.down()
            raise
        self.is_up = True
        return self

    def _up(self):
        sw = self.switch
        _ip("netns", "add", sw)
        self.made.append(sw)
        _ip("-n", sw, "link", "set", "lo", "up")
        _ip("-n", sw, "link", "add", "br0", "type", "bridge", "stp_state", "0",
            "forward_delay", "0")
        for h in self.hosts:
            _ip("netns", "add", h.ns)
            self.made.append(h.ns)
            port = "v" + h.letter
            #  The pair is made in the switch's namespace: no names in the root one
            _ip("-n", sw, "link", "add", port, "type", "veth", "peer", "name", h.ifname,
                "netns", h.ns)
            _ip("-n", sw, "link", "set", port, "master", "br0", "up")
            _ip("-n", h.ns, "link", "set", "lo", "up")
            _ip("-n", h.ns, "addr", "add", h.addr + "/24", "brd", "+", "dev", h.ifname)
            _ip("-n", h.ns, "link", "set", h.ifname, "up")
            _ip("-n", h.ns, "route", "add", "default", "via", GATEWAY, "dev", h.ifname)
            os.makedirs(h.home, mode=0o700, exist_ok=True)
        _ip("-n", sw, "link", "set", "br0", "up")
        #  Wait until every host reaches every other (the bridge forwards)
        for h in self.hosts:
            for other in self.hosts:
                if other is not h:
                    aiptest.wait_until(lambda: h.reaches(other.addr), 20,
                                       "%s to reach %s" % (h.name, other.name), 0.1)

    def down(self):
        """Stop the daemons, delete the namespaces and the temporary directory."""
        for h in self.hosts:
            if h.ns in self.made:
                h.stop_daemons()
        for ns in reversed(self.made):
            _kill_all(netns_pids(ns))
            _ip("netns", "del", ns, check=False)
        self.made = []
        self.is_up = False
        if self in _live:
            _live.remove(self)
        if self.tmp and not os.environ.get("AIP_KEEP_TMP"):
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif self.tmp:
            open(os.path.join(self.tmp, "KEPT"), "w").close()
            sys.stderr.write("lanhosts: kept %s (AIP_KEEP_TMP)\n" % self.tmp)
        self.tmp = None

    def leftovers(self):
        """What of this net still exists: namespaces and daemon processes."""
        names = [self.switch] + [h.ns for h in self.hosts]
        left = [ns for ns in netns_list() if ns in names]
        for h in self.hosts:
            left += ["%s pid %d (%s)" % (h.name, pid, name)
                     for pid, name in h.daemon_pids().items()]
        return left

    def logs(self, tail=6000):
        """The end of every host's daemon.log, for a failure report."""
        out = []
        for h in self.hosts:
            text = h.log()
            out.append("---- %s (%s) daemon.log, last %d bytes ----\n%s"
                       % (h.name, h.home, tail, text[-tail:] if text else "(empty)"))
        return "\n".join(out)


_live = []                      # nets up, for the SIGTERM handler
_sigterm_installed = False


def _on_sigterm(signum, frame):
    #  unittest would catch SystemExit and go on: clean up here and leave
    for net in list(_live):
        try:
            net.down()
        except Exception as e:  # noqa: BLE001 - best effort on the way out
            sys.stderr.write("lanhosts: cleanup after SIGTERM: %s\n" % e)
    os._exit(128 + signum)


def _install_sigterm():
    """A SIGTERM (a kill, an impatient runner) still removes the hosts."""
    global _sigterm_installed
    if _sigterm_installed:
        return
    _sigterm_installed = True
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_sigterm)


class Capture:
    """tcpdump on one host's interface, into a pcap file."""

    def __init__(self, host, path, bpf=()):
        self.host, self.path, self.bpf = host, path, list(bpf)
        self.proc = None
        self.errpath = path + ".err"

    def start(self, timeout=20):
        err = open(self.errpath, "wb")
        #  -U --immediate-mode: each packet goes to the file at once (not when a
        #  ring block fills or times out: SIGINT would lose that block);
        #  -Z root: do not drop to user tcpdump, who could not write into our
        #  0700 directory; -s 0: whole packets
        self.proc = self.host.popen("tcpdump", "-i", self.host.ifname, "-n", "-U",
                                    "--immediate-mode", "-s", "0", "-Z", "root",
                                    "-w", self.path, *self.bpf, uts=False,
                                    stdout=subprocess.DEVNULL, stderr=err)
        err.close()
        aiptest.wait_until(lambda: self._listening(), timeout, "tcpdump to listen", 0.05)
        return self

    def _listening(self):
        if self.proc.poll() is not None:
            raise AssertionError("tcpdump exited (%s): %s" % (self.proc.returncode,
                                                              self.stderr()))
        return "listening on" in self.stderr()

    def stderr(self):
        try:
            with open(self.errpath, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        """Stop tcpdump (it flushes the file); the capture's bytes."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.data()

    def data(self):
        with open(self.path, "rb") as f:
            return f.read()

    def packets(self):
        """The capture's IPv4 packets: dicts proto, src, dst, sport, dport, payload."""
        return parse_pcap(self.data())


def parse_pcap(data):
    """IPv4 TCP/UDP packets of a classic pcap file (Ethernet link type)."""
    if len(data) < 24:
        return []
    magic = data[:4]
    endian = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
              b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
    if endian is None:
        raise AssertionError("not a pcap file (magic %r)" % magic)
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        raise AssertionError("pcap link type %d, expected Ethernet" % linktype)
    out, off = [], 24
    while off + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[off + 8:off + 12])[0]
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        proto = ip[9]
        src = ".".join(str(b) for b in ip[12:16])
        dst = ".".join(str(b) for b in ip[16:20])
        l4 = ip[ihl:total]
        if proto == 6 and len(l4) >= 20:
            sport, dport = struct.unpack("!HH", l4[:4])
            payload = l4[(l4[12] >> 4) * 4:]
            out.append(dict(proto="tcp", src=src, dst=dst, sport=sport, dport=dport,
                            payload=payload))
        elif proto == 17 and len(l4) >= 8:
            sport, dport = struct.unpack("!HH", l4[:4])
            out.append(dict(proto="udp", src=src, dst=dst, sport=sport, dport=dport,
                            payload=l4[8:]))
    return out
