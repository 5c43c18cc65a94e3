// Package membership runs a node's cluster membership on hashicorp/memberlist: it joins the
// seeds (retrying in the background until one answers), gossips each member's RESP address in
// its metadata, encrypts gossip with a key derived from the cluster secret, rejoins members lost
// to a partition once they answer again, and reports every change to one callback, serially.
package membership

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Profiles name memberlist's timing presets.
const (
	// ProfileLAN is memberlist's DefaultLANConfig: failure detection in a few seconds, gentle on
	// the network. The production default.
	ProfileLAN = "lan"
	// ProfileWAN is memberlist's DefaultWANConfig, for members far apart.
	ProfileWAN = "wan"
	// ProfileLocal is for nodes on one host (tests): sub-second probes, a dead member is noticed
	// within about two seconds.
	ProfileLocal = "local"
)

// EventKind says what happened to a member.
type EventKind uint8

// Event kinds.
const (
	Joined  EventKind = iota + 1 // a member appeared (including this node, first)
	Updated                      // a member's metadata changed
	Left                         // a member left gracefully
	Failed                       // a member stopped answering and was declared dead
)

// String returns the kind's name as logs show it.
func (k EventKind) String() string {
	return [...]string{"", "join", "update", "leave", "failed"}[k]
}

// Member is one cluster member.
type Member struct {
	Name   string // unique node name
	Gossip string // memberlist address, host:port
	RESP   string // RESP address peers forward commands to, host:port
	State  string // alive, suspect, left or dead
}

// Event is one membership change with the members alive after it.
type Event struct {
	Kind    EventKind
	Member  Member
	Members []Member // alive members, sorted by name, this node included
	// Joining is set while this node is still joining its seeds: Members is then this node's
	// partial view of the cluster, filled in one member at a time as memberlist merges the
	// seed's state. Once the join has succeeded, an Updated event for this node carries the
	// whole list with Joining unset.
	Joining bool
}

// Config configures a Membership. NodeName, Bind and RESP are required.
type Config struct {
	// NodeName is this member's unique name.
	NodeName string
	// Bind is the gossip listen address, host:port (port 0 picks a free one).
	Bind string
	// Advertise is the address peers use: "host" or "host:port". Empty: derived from Bind (or
	// the first private address when Bind is unspecified).
	Advertise string
	// RESP is the RESP address to advertise to peers; a host of 0.0.0.0/:: is replaced by the
	// advertised gossip host.
	RESP string
	// Join lists seed members, host:port. Empty: this node starts a new cluster.
	Join []string
	// Secret derives the gossip encryption key (SHA-256, 32 bytes) so any passphrase works.
	// Empty: gossip is not encrypted.
	Secret string
	// Profile is ProfileLAN (default), ProfileWAN or ProfileLocal.
	Profile string
	// RetryInterval spaces join attempts and rejoins of lost members (default 1s).
	RetryInterval time.Duration
	// Transport replaces memberlist's UDP/TCP transport (tests inject network faults with it).
	Transport memberlist.NodeAwareTransport
	// OnChange is called for every change, one call at a time, from memberlist's goroutines
	// (and once from the join's, when it succeeds): it must not block for long nor call back
	// into the Membership's Leave or Shutdown. It is never called once Shutdown has returned.
	OnChange func(Event)
	// Log receives one line per join, leave and failure, and memberlist's own logs at debug.
	Log *slog.Logger
}

// resolveHost returns host as an IP address, looking a name up (memberlist advertises IPs
// only; in a container the advertised address is usually the service's name). IPv4 is
// preferred.
func resolveHost(host string) (string, error) {
	if ip := net.ParseIP(host); ip != nil {
		return host, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return "", err
	}
	if len(addrs) == 0 {
		return "", fmt.Errorf("no address for %s", host)
	}
	for _, a := range addrs {
		if a.IP.To4() != nil {
			return a.IP.String(), nil
		}
	}
	return addrs[0].IP.String(), nil
}

// SecretKey derives memberlist's 32-byte AES key from a passphrase.
func SecretKey(secret string) []byte {
	sum := sha256.Sum256([]byte("vela-gossip:" + secret))
	return sum[:]
}

// Membership is this node's view of the cluster.
type Membership struct {
	cfg  Config
	log  *slog.Logger
	ml   *memberlist.Memberlist
	self Member

	mu      sync.Mutex        // guards members and lost
	members map[string]Member // alive (or suspect) members by name
	lost    map[string]lostMember

	meta   atomic.Pointer[string] // the RESP address NodeMeta publishes
	joined atomic.Bool
	// joining is set while the node joins its seeds, from its start when it has any: the
	// events of memberlist's merge of a seed's state come then (Event.Joining).
	joining  atomic.Bool
	stop     chan struct{}
	done     sync.WaitGroup
	stopOnce sync.Once
	leftOnce sync.Once
	markOnce sync.Once
	// notifyMu keeps OnChange calls one at a time: memberlist's event calls are serial, but the
	// join's own event comes from joinLoop. It also guards shut.
	notifyMu sync.Mutex
	// shut is set once Shutdown has stopped memberlist: changes it still reports are dropped.
	shut bool
}

// lostMember is a member declared dead, remembered so it can be rejoined after a partition.
type lostMember struct {
	gossip string
	since  time.Time
}

// forgetLost is how long a dead member's address is retried.
const forgetLost = 30 * time.Minute

// Start creates the memberlist, starts joining the seeds in the background and returns.
func Start(cfg Config) (*Membership, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = time.Second
	}
	var mc *memberlist.Config
	switch cfg.Profile {
	case "", ProfileLAN:
		mc = memberlist.DefaultLANConfig()
	case ProfileWAN:
		mc = memberlist.DefaultWANConfig()
	case ProfileLocal:
		mc = memberlist.DefaultLocalConfig()
		mc.ProbeInterval = 400 * time.Millisecond
		mc.ProbeTimeout = 200 * time.Millisecond
		mc.SuspicionMult = 2
		mc.SuspicionMaxTimeoutMult = 2
		mc.GossipInterval = 50 * time.Millisecond
		mc.PushPullInterval = 2 * time.Second
		mc.TCPTimeout = time.Second
		mc.DeadNodeReclaimTime = time.Second
	default:
		return nil, fmt.Errorf("membership: unknown profile %q", cfg.Profile)
	}
	host, portStr, err := net.SplitHostPort(cfg.Bind)
	if err != nil {
		return nil, fmt.Errorf("membership: bind address %q: %w", cfg.Bind, err)
	}
	port, _ := strconv.Atoi(portStr)
	mc.Name = cfg.NodeName
	mc.BindAddr = host
	mc.BindPort = port
	mc.AdvertisePort = port
	if cfg.Advertise != "" {
		ah, ap, err := net.SplitHostPort(cfg.Advertise)
		if err != nil {
			ah, ap = cfg.Advertise, ""
		}
		ip, err := resolveHost(ah)
		if err != nil {
			return nil, fmt.Errorf("membership: advertise address %q: %w", cfg.Advertise, err)
		}
		mc.AdvertiseAddr = ip
		if ap != "" {
			mc.AdvertisePort, _ = strconv.Atoi(ap)
		}
	}
	if cfg.Secret != "" {
		mc.SecretKey = SecretKey(cfg.Secret)
	}
	mc.LogOutput = logWriter{cfg.Log}
	mc.Logger = nil
	m := &Membership{cfg: cfg, log: cfg.Log, members: map[string]Member{}, lost: map[string]lostMember{},
		stop: make(chan struct{})}
	mc.Delegate = (*delegate)(m)
	mc.Events = (*events)(m)
	if cfg.Transport != nil {
		mc.Transport = cfg.Transport
	} else if port == 0 {
		// memberlist picks a free port itself only through its transport; build it here so the
		// same port serves UDP and TCP and is known before Create advertises it.
		t, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{host}, BindPort: 0, Logger: log.New(mc.LogOutput, "", 0)})
		if err != nil {
			return nil, fmt.Errorf("membership: %w", err)
		}
		mc.Transport = t
		mc.BindPort = t.GetAutoBindPort()
		if mc.AdvertisePort == 0 {
			mc.AdvertisePort = mc.BindPort
		}
	}
	m.self = Member{Name: cfg.NodeName, RESP: cfg.RESP, State: "alive"}
	if h, p, err := net.SplitHostPort(cfg.RESP); err == nil && (h == "" || net.ParseIP(h).IsUnspecified()) {
		if ah := mc.AdvertiseAddr; ah != "" {
			m.self.RESP = net.JoinHostPort(ah, p)
		} else if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
			m.self.RESP = net.JoinHostPort(host, p)
		}
	}
	m.meta.Store(&m.self.RESP)
	m.joining.Store(len(cfg.Join) > 0) // until joinLoop knows whether any seed is another node
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("membership: %w", err)
	}
	m.ml = ml
	ln := ml.LocalNode()
	m.self.Gossip = net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))
	if h, p, err := net.SplitHostPort(cfg.RESP); err == nil && (h == "" || net.ParseIP(h).IsUnspecified()) {
		m.self.RESP = net.JoinHostPort(ln.Addr.String(), p)
		addr := m.self.RESP
		m.meta.Store(&addr)
		_ = ml.UpdateNode(time.Second)
	}
	// A node whose seeds are all itself (or that has none) is a cluster of its own from the
	// start: decided here, so that it serves before Start returns.
	seeds := m.otherSeeds(cfg.Join)
	if len(seeds) == 0 {
		m.joining.Store(false)
		m.joinedNow()
	}
	m.done.Add(1)
	go m.joinLoop(seeds)
	return m, nil
}

// Self returns this node as peers see it.
func (m *Membership) Self() Member { return m.self }

// Joined reports whether the node has joined a cluster (at once when it has no seeds).
func (m *Membership) Joined() bool { return m.joined.Load() }

// Members returns the members memberlist considers alive, sorted by name ("alive", or
// "leaving" once they have announced a graceful leave), followed by the members lost to failure
// ("dead") that are still being retried.
func (m *Membership) Members() []Member {
	// From the member map the events keep, not memberlist's Members(): the nodes it returns are
	// its own, which it goes on updating without a lock the caller could take.
	m.mu.Lock()
	out := make([]Member, 0, len(m.members))
	for _, mem := range m.members {
		out = append(out, mem)
	}
	var dead []Member
	for name, l := range m.lost {
		dead = append(dead, Member{Name: name, Gossip: l.gossip, State: "dead"})
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	sort.Slice(dead, func(i, j int) bool { return dead[i].Name < dead[j].Name })
	return append(out, dead...)
}

// joinLoop joins the seeds (the other nodes of cfg.Join), retrying until one answers, then
// keeps trying to rejoin members declared dead: after a partition heals, each side would
// otherwise go on without the other.
func (m *Membership) joinLoop(seeds []string) {
	defer m.done.Done()
	t := time.NewTicker(m.cfg.RetryInterval)
	defer t.Stop()
	for {
		if !m.joined.Load() {
			m.joining.Store(true)
			// One seed at a time, up to the first that answers: its state holds every member.
			// memberlist's own loop over a list goes on to the next seeds, and one that accepts
			// and never answers would hold the join for a TCP timeout while the members that
			// answered already send this node their clients' requests.
			var err error
			for _, seed := range seeds {
				var n int
				if n, err = m.ml.Join([]string{seed}); n > 0 {
					m.log.Info("cluster joined", "node", m.self.Name, "seed", seed, "members", m.ml.NumMembers())
					break
				}
			}
			m.joining.Store(false)
			if m.ml.NumMembers() > 1 { // joined, or another member joined this one meanwhile
				m.joinedNow()
			} else {
				m.log.Debug("cluster join failed, retrying", "seeds", strings.Join(seeds, ","), "err", err)
			}
		} else {
			m.rejoinLost()
		}
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
	}
}

// joinedNow marks the node as a member of a cluster and reports its whole member list (an
// Updated event of this node, Joining unset), once.
func (m *Membership) joinedNow() {
	if m.joined.Swap(true) {
		return
	}
	m.notifyMember(Updated, m.selfMember())
}

// selfMember is this node as the others see it.
func (m *Membership) selfMember() Member {
	meta := *m.meta.Load()
	self := Member{Name: m.self.Name, Gossip: m.self.Gossip, RESP: strings.TrimSuffix(meta, leavingMark), State: "alive"}
	if strings.HasSuffix(meta, leavingMark) {
		self.State = "leaving"
	}
	return self
}

// otherSeeds returns the seeds that are not this node itself. memberlist counts a join to its
// own address as a success, so a node listed among its own seeds (one list for every node, as in
// docker-compose.yml) would take itself for joined while the others were still starting, and
// stay a cluster of one. A seed is this node when it is spelled as its gossip address (bound,
// advertised or listened on) or resolves to the address it listens on.
func (m *Membership) otherSeeds(seeds []string) []string {
	self := map[string]bool{m.self.Gossip: true, m.cfg.Bind: true}
	if m.cfg.Advertise != "" {
		self[m.cfg.Advertise] = true
	}
	var out []string
	for _, s := range seeds {
		if self[s] {
			continue
		}
		if a, err := net.ResolveTCPAddr("tcp", s); err == nil && a.String() == m.self.Gossip {
			continue
		}
		out = append(out, s)
	}
	return out
}

func (m *Membership) rejoinLost() {
	m.mu.Lock()
	var addrs []string
	for name, l := range m.lost {
		if time.Since(l.since) > forgetLost {
			delete(m.lost, name)
			continue
		}
		addrs = append(addrs, l.gossip)
	}
	m.mu.Unlock()
	if len(addrs) > 0 {
		if n, _ := m.ml.Join(addrs); n > 0 {
			m.log.Debug("rejoined lost members", "answered", n)
		}
	}
}

// Leave tells the cluster this node is leaving and waits, up to timeout, for the message to
// spread. The node keeps running until Shutdown. Leave is idempotent.
func (m *Membership) Leave(timeout time.Duration) {
	m.leftOnce.Do(func() {
		m.stopOnce.Do(func() { close(m.stop) })
		m.done.Wait()
		// First mark the metadata, so that the others record a leave, not a failure.
		m.MarkLeaving(timeout / 2)
		// memberlist's only error here is that the leave message was not gossiped its full
		// number of times within the timeout. The node leaves all the same: a member that
		// missed the message detects the departure as a failure a few probes later (a partitioned
		// member has already told every other member directly). Serf treats it the same way
		// (hashicorp/serf#640), so it is a warning, not a failed shutdown.
		if err := m.ml.Leave(timeout / 2); err != nil {
			m.log.Warn("membership: leave message not confirmed sent; the others will detect the departure", "node", m.cfg.NodeName, "err", err)
		}
	})
}

// MarkLeaving marks this member as leaving in its metadata (Member.State "leaving" on the
// others) and waits, up to timeout, for the change to spread, while the node stays a member:
// a topology calls it before it hands its keys over, so that a node joining meanwhile learns it
// with the member list and does not count on this one. It is idempotent; Leave calls it.
func (m *Membership) MarkLeaving(timeout time.Duration) {
	m.markOnce.Do(func() {
		meta := *m.meta.Load() + leavingMark
		m.meta.Store(&meta)
		_ = m.ml.UpdateNode(timeout)
	})
}

// Shutdown stops gossiping without saying goodbye (call Leave first for a graceful exit). It is
// idempotent.
func (m *Membership) Shutdown() error {
	m.stopOnce.Do(func() { close(m.stop) })
	m.done.Wait()
	err := m.ml.Shutdown()
	// memberlist's Shutdown waits neither for its packet handlers nor for its suspicion timers,
	// and either may still report a change (a member declared dead, say). OnChange is not
	// called after Shutdown returns, and a call under way when it starts has finished by then:
	// the owner may tear down what OnChange touches (its WaitGroup, its pools) right after.
	m.notifyMu.Lock()
	m.shut = true
	m.notifyMu.Unlock()
	return err
}

// The metadata is the RESP address, followed by " leaving" once the member has started a
// graceful leave: memberlist reports a leave and a failure alike to the event delegate, so the
// flag is what tells them apart.
const leavingMark = " leaving"

func member(n *memberlist.Node) Member {
	meta := string(n.Meta)
	m := Member{Name: n.Name, Gossip: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))),
		RESP: strings.TrimSuffix(meta, leavingMark), State: "alive"}
	if strings.HasSuffix(meta, leavingMark) {
		m.State = "leaving"
	}
	return m
}

// events implements memberlist.EventDelegate. memberlist calls it serially, holding its node
// lock, so it only updates the member map and hands the change to OnChange.
type events Membership

func (e *events) NotifyJoin(n *memberlist.Node)   { e.change(Joined, n) }
func (e *events) NotifyUpdate(n *memberlist.Node) { e.change(Updated, n) }
func (e *events) NotifyLeave(n *memberlist.Node) {
	m := (*Membership)(e)
	m.mu.Lock()
	prev, known := m.members[n.Name]
	m.mu.Unlock()
	if known && prev.State == "leaving" || strings.HasSuffix(string(n.Meta), leavingMark) {
		e.change(Left, n)
	} else {
		e.change(Failed, n)
	}
}

func (e *events) change(kind EventKind, n *memberlist.Node) {
	m := (*Membership)(e)
	mem := member(n)
	if kind == Joined && mem.Name != m.cfg.NodeName && !m.joining.Load() && !m.joined.Load() {
		// Another member joined this one while it was not joining itself (its seeds were not up
		// yet: one seed list for every node): it is in a cluster now.
		m.notifyMember(kind, mem)
		m.joinedNow()
		return
	}
	m.notifyMember(kind, mem)
}

// notifyMember records a change of mem in the member map and hands it to OnChange.
func (m *Membership) notifyMember(kind EventKind, mem Member) {
	m.notifyMu.Lock()
	defer m.notifyMu.Unlock()
	if m.shut {
		return
	}
	m.mu.Lock()
	switch kind {
	case Joined, Updated:
		m.members[mem.Name] = mem
		delete(m.lost, mem.Name)
	case Left:
		mem.State = "left"
		delete(m.members, mem.Name)
		delete(m.lost, mem.Name)
	case Failed:
		mem.State = "dead"
		delete(m.members, mem.Name)
		if mem.Name != m.cfg.NodeName {
			m.lost[mem.Name] = lostMember{gossip: mem.Gossip, since: time.Now()}
		}
	}
	list := make([]Member, 0, len(m.members))
	for _, x := range m.members {
		list = append(list, x)
	}
	m.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	if kind != Updated {
		m.log.Info("cluster member "+kind.String(), "node", m.cfg.NodeName, "member", mem.Name,
			"gossip", mem.Gossip, "resp", mem.RESP, "members", len(list))
	}
	if m.cfg.OnChange != nil {
		m.cfg.OnChange(Event{Kind: kind, Member: mem, Members: list, Joining: m.joining.Load()})
	}
}

// delegate implements memberlist.Delegate: the metadata is the RESP address; Vela sends no
// user messages or state over gossip.
type delegate Membership

func (d *delegate) NodeMeta(limit int) []byte {
	b := []byte(*d.meta.Load())
	if len(b) > limit {
		return nil
	}
	return b
}

func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// logWriter turns memberlist's log lines ("[DEBUG] memberlist: …") into slog records.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	switch {
	case strings.Contains(line, "[ERR]"):
		level = slog.LevelWarn
	case strings.Contains(line, "[WARN]"):
		level = slog.LevelDebug // probes of a dead peer warn constantly; the events say it once
	}
	w.log.Log(context.Background(), level, "memberlist", "msg", line)
	return len(p), nil
}

var (
	_ memberlist.EventDelegate = (*events)(nil)
	_ memberlist.Delegate      = (*delegate)(nil)
	_ io.Writer                = logWriter{}
)
