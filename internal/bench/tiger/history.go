package tiger

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"tigerchat/internal/bench/load"
	"tigerchat/internal/bench/procs"
	"tigerchat/model/chat"
	"tigerchat/model/grid"
	"tigerchat/runtime/node"
)

// HistoryOptions size the history benchmark: Rooms rooms of
// MessagesPerRoom messages each and one room of BigRoomMessages, all on
// one shard, posted by Writers connections in post_batch commands of
// Batch posts; then Pages random 50-message pages of the big room read
// through the edge, and a replica wiped and synced.
type HistoryOptions struct {
	Rooms           int
	MessagesPerRoom int
	BigRoomMessages int
	BodyBytes       int
	Writers         int
	Batch           int
	Pages           int
	Deadline        time.Duration // bounds the fill
}

// HistoryResult is what the history benchmark measured.
type HistoryResult struct {
	Messages      uint64  `json:"messages"`
	Rooms         int     `json:"rooms"`
	FillSeconds   float64 `json:"fill_seconds"`
	FillPerSecond float64 `json:"fill_msg_per_s"`
	// ChangedBytes: what the posts changed, as a message record counts it
	// (body, key, author, seq, time, previous hash, hash).
	ChangedBytes uint64 `json:"changed_bytes"`
	// GridBytesWritten: every grid byte one replica wrote during the fill
	// (checkpoints: message blocks, table pages, index nodes).
	GridBytesWritten uint64  `json:"grid_bytes_written"`
	WriteRatio       float64 `json:"checkpoint_bytes_per_changed_byte"`
	// KindBytesWritten splits GridBytesWritten by block kind.
	KindBytesWritten map[string]uint64 `json:"checkpoint_bytes_by_kind"`
	// DiskBytes: bytes allocated on disk by one replica's data files beyond
	// what they held before the fill (the grid; the WAL is preallocated).
	DiskBytes      uint64  `json:"disk_bytes"`
	DiskPerMessage float64 `json:"disk_bytes_per_message"`
	CacheBytes     int     `json:"cache_bytes"`
	RSSBytes       []int64 `json:"rss_bytes"` // per replica, after the fill
	ColdPageP50Ms  float64 `json:"cold_page_p50_ms"`
	ColdPageP99Ms  float64 `json:"cold_page_p99_ms"`
	WarmPageP50Ms  float64 `json:"warm_page_p50_ms"`
	WarmPageP99Ms  float64 `json:"warm_page_p99_ms"`
	PageMessages   int     `json:"page_messages"` // messages per page read (50)
	SyncSeconds    float64 `json:"sync_seconds"`
	SyncBlocks     uint64  `json:"sync_blocks"`
	SyncBytes      uint64  `json:"sync_bytes"` // grid bytes the synced replica's data files hold after it
	ColdPagesRead  int     `json:"cold_pages"`
	PageErrors     int     `json:"page_errors"`
	CheckpointOp   uint64  `json:"checkpoint_op"`
	BlocksUsed     uint64  `json:"grid_blocks_used"`
	CacheHitRatio  float64 `json:"cache_hit_ratio"` // of replica 0 over the whole run
	// The block cache's hit ratio on the replica that served the pages
	// (the shard's primary), in the cold pass and in the warm one.
	ColdCacheHitRatio float64 `json:"cold_cache_hit_ratio"`
	WarmCacheHitRatio float64 `json:"warm_cache_hit_ratio"`
	SyncedReplica     int     `json:"synced_replica"`
	SyncWaitedForOp   uint64  `json:"synced_to_op"`
	// VerifiedMessages: read back from seq 1, with verifying chains, from
	// every room after kill -9 of every replica and a restart.
	VerifiedMessages uint64  `json:"verified_after_kill"`
	VerifySeconds    float64 `json:"verify_seconds"`
}

const pageMessages = 50

// History fills the cluster and measures it (see HistoryOptions).
func (s *System) History(ctx context.Context, o HistoryOptions, log io.Writer) (HistoryResult, error) {
	res := HistoryResult{Rooms: o.Rooms + 1, PageMessages: pageMessages, CacheBytes: s.cluster.Config.CacheSizeBytes}
	before, err := s.diskBytes()
	if err != nil {
		return res, err
	}
	written0, kinds0 := s.gridWritten(0), s.gridKindsWritten(0)
	rooms, err := s.createRooms(ctx, o)
	if err != nil {
		return res, err
	}
	big := rooms[len(rooms)-1]
	start := time.Now()
	if err := s.fill(ctx, o, rooms, &res, log); err != nil {
		return res, err
	}
	res.FillSeconds = time.Since(start).Seconds()
	res.FillPerSecond = float64(res.Messages) / res.FillSeconds
	// Let a checkpoint take the last posts to the grid: post on until the
	// checkpoint op moves past the fill.
	target := s.commit(0)
	if err := s.checkpointPast(ctx, target, big); err != nil {
		return res, err
	}
	res.GridBytesWritten = s.gridWritten(0) - written0
	res.KindBytesWritten = map[string]uint64{}
	for k, b := range s.gridKindsWritten(0) {
		if b > kinds0[k] {
			res.KindBytesWritten[grid.Kind(k).String()] = b - kinds0[k]
		}
	}
	res.WriteRatio = float64(res.GridBytesWritten) / float64(max(res.ChangedBytes, 1))
	after, err := s.diskBytes()
	if err != nil {
		return res, err
	}
	res.DiskBytes = after[0] - before[0]
	res.DiskPerMessage = float64(res.DiskBytes) / float64(max(res.Messages, 1))
	for _, p := range s.replicas {
		res.RSSBytes = append(res.RSSBytes, rss(p.PID()))
	}
	fmt.Fprintf(log, "history: filled %d messages in %.1f s; disk %d bytes; reading pages\n", res.Messages, res.FillSeconds, res.DiskBytes)
	if err := s.pages(ctx, o, big, &res); err != nil {
		return res, err
	}
	if sts, err := s.cluster.Status(0); err == nil && len(sts) > 0 {
		st := sts[0].Storage
		res.CheckpointOp, res.BlocksUsed = st.CheckpointOp, st.BlocksUsed
		res.CacheHitRatio = float64(st.Grid.CacheHits) / float64(max(st.Grid.CacheHits+st.Grid.CacheMisses, 1))
	}
	fmt.Fprintf(log, "history: syncing a wiped replica\n")
	if err := s.syncWiped(ctx, big, before, &res); err != nil {
		return res, err
	}
	fmt.Fprintf(log, "history: kill -9 of every replica, restart, and every room read from seq 1\n")
	return res, s.verifyAfterKill(ctx, o, rooms, &res)
}

// verifyAfterKill kills every replica with SIGKILL, starts them again,
// and reads every room from seq 1 through the edge: each must hold exactly
// the messages the fill posted (the big room more: the posts that moved
// the checkpoint), gapless, with a verifying hash chain.
func (s *System) verifyAfterKill(ctx context.Context, o HistoryOptions, rooms []string, res *HistoryResult) error {
	for _, p := range s.replicas {
		p.Kill()
	}
	for i := range s.replicas {
		if err := procs.Restart(s.replicas, i); err != nil {
			return err
		}
	}
	for i := range replicaCount {
		if err := waitOK(ctx, "http://"+s.cluster.Config.Replicas[i].HTTPAddr+"/healthz"); err != nil {
			return fmt.Errorf("replica %d not healthy after the restart: %w", i, err)
		}
	}
	tok, err := s.token(publisher)
	if err != nil {
		return err
	}
	t0 := time.Now()
	var verified atomic.Uint64
	client := &http.Client{Timeout: 30 * time.Second}
	err = s.parallel(ctx, o.Writers, len(rooms), func(_ *conn, i int) error {
		want := uint64(o.MessagesPerRoom)
		if i == len(rooms)-1 {
			want = uint64(o.BigRoomMessages)
		}
		n, err := readWhole(ctx, client, s.edgeAddr, tok, rooms[i])
		if err != nil {
			return err
		}
		if n < want || (i < len(rooms)-1 && n != want) {
			return fmt.Errorf("room %s: %d messages read from seq 1 after the restart, %d posted", rooms[i], n, want)
		}
		verified.Add(n)
		return nil
	})
	res.VerifiedMessages, res.VerifySeconds = verified.Load(), time.Since(t0).Seconds()
	return err
}

// readWhole reads room from seq 1 to its head through the edge, verifying
// the hash chain across pages, and returns how many messages it holds.
func readWhole(ctx context.Context, client *http.Client, addr, tok, room string) (uint64, error) {
	var prev chat.Message
	n := uint64(0)
	for from := uint64(1); ; {
		url := fmt.Sprintf("http://%s/v1/rooms/%s/messages?from=%d&limit=%d", addr, room, from, chat.ReadLimitMax)
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			return n, err
		}
		var page struct {
			HeadSeq  uint64 `json:"head_seq"`
			More     bool   `json:"more"`
			Messages []struct {
				Seq      uint64 `json:"seq"`
				Hash     string `json:"hash"`
				PrevHash string `json:"prev_hash"`
				Author   string `json:"author"`
				TimeNs   string `json:"time_ns"`
				Key      string `json:"key"`
				Body     string `json:"body"`
				BodyB64  string `json:"body_b64"`
			} `json:"messages"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return n, fmt.Errorf("room %s from seq %d: status %d, %v", room, from, resp.StatusCode, err)
		}
		msgs := make([]chat.Message, 0, len(page.Messages)+1)
		if n > 0 {
			msgs = append(msgs, prev) // chains the page to the previous one
		}
		for _, m := range page.Messages {
			cm := chat.Message{Tenant: tenant, Room: room, Seq: m.Seq, Author: m.Author, Key: m.Key, Body: []byte(m.Body)}
			if m.BodyB64 != "" {
				if cm.Body, err = base64.StdEncoding.DecodeString(m.BodyB64); err != nil {
					return n, err
				}
			}
			cm.TimeNs, err = strconv.ParseInt(m.TimeNs, 10, 64)
			if err == nil {
				cm.Hash, err = parseHash(m.Hash)
			}
			if err == nil {
				cm.PrevHash, err = parseHash(m.PrevHash)
			}
			if err != nil {
				return n, fmt.Errorf("room %s seq %d: %w", room, m.Seq, err)
			}
			msgs = append(msgs, cm)
		}
		if err := chat.VerifyChain(msgs); err != nil {
			return n, fmt.Errorf("room %s from seq %d: %w", room, from, err)
		}
		if len(page.Messages) == 0 {
			if n != page.HeadSeq {
				return n, fmt.Errorf("room %s: read %d messages from seq 1, head %d", room, n, page.HeadSeq)
			}
			return n, nil
		}
		n += uint64(len(page.Messages))
		prev = msgs[len(msgs)-1]
		if first := msgs[0].Seq; (n == uint64(len(page.Messages)) && first != 1) || prev.Seq != n {
			return n, fmt.Errorf("room %s: page from %d ends at seq %d after %d messages", room, from, prev.Seq, n)
		}
		if !page.More {
			if n != page.HeadSeq {
				return n, fmt.Errorf("room %s: read %d messages from seq 1, head %d", room, n, page.HeadSeq)
			}
			return n, nil
		}
		from = n + 1
	}
}

func parseHash(s string) (chat.Hash, error) {
	var h chat.Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("hash %q is not %d hex bytes", s, len(h))
	}
	copy(h[:], b)
	return h, nil
}

// createRooms creates the rooms (the big one last) from Writers
// connections at once.
func (s *System) createRooms(ctx context.Context, o HistoryOptions) ([]string, error) {
	rooms := make([]string, o.Rooms+1)
	for i := range o.Rooms {
		rooms[i] = "h-" + strconv.Itoa(i)
	}
	rooms[o.Rooms] = "big"
	return rooms, s.parallel(ctx, o.Writers, len(rooms), func(c *conn, i int) error {
		_, err := c.call(ctx, map[string]any{"cmd": "create_room", "room": rooms[i]})
		return err
	})
}

// parallel runs n jobs over w connections.
func (s *System) parallel(ctx context.Context, w, n int, job func(c *conn, i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, w)
	for k := range w {
		c, err := s.dial(ctx, publisher, nil)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.close()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := job(c, i); err != nil {
					errs[k] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

// fill posts every room's messages in batches; the big room's batches are
// spread among the others' so that it grows across many checkpoints.
func (s *System) fill(ctx context.Context, o HistoryOptions, rooms []string, res *HistoryResult, log io.Writer) error {
	var small, bigs []historyJob
	for room := range o.Rooms {
		for first := 0; first < o.MessagesPerRoom; first += o.Batch {
			small = append(small, historyJob{room: rooms[room], first: first, n: min(o.Batch, o.MessagesPerRoom-first)})
		}
	}
	for first := 0; first < o.BigRoomMessages; first += o.Batch {
		bigs = append(bigs, historyJob{room: rooms[len(rooms)-1], first: first, n: min(o.Batch, o.BigRoomMessages-first)})
	}
	// Interleave in proportion, so the big room grows all along.
	jobs := make([]historyJob, 0, len(small)+len(bigs))
	totalSmall, totalBig := len(small), len(bigs)
	for len(small)+len(bigs) > 0 {
		if len(bigs) > 0 && (len(small) == 0 || len(bigs)*totalSmall >= len(small)*totalBig) {
			jobs, bigs = append(jobs, bigs[0]), bigs[1:]
		} else {
			jobs, small = append(jobs, small[0]), small[1:]
		}
	}
	ctx, cancel := context.WithTimeout(ctx, o.Deadline)
	defer cancel()
	var posted, changed atomic.Uint64
	body := chatText(o.BodyBytes)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Second):
				fmt.Fprintf(log, "history: %d of %d messages posted\n", posted.Load(), o.Rooms*o.MessagesPerRoom+o.BigRoomMessages)
			}
		}
	}()
	defer close(stop)
	err := s.parallel(ctx, o.Writers, len(jobs), func(c *conn, i int) error {
		jb := jobs[i]
		posts := make([]load.Post, jb.n)
		for m := range posts {
			key := fmt.Sprintf("%s-%d", jb.room, jb.first+m)
			posts[m] = load.Post{Key: key, Body: body[(jb.first+m)%len(body)]}
			changed.Add(uint64(len(key) + len(posts[m].Body) + len(publisher) + 8 + 8 + 32 + 32))
		}
		results, err := c.postBatch(ctx, jb.room, posts)
		if err != nil {
			return err
		}
		for _, r := range results {
			if r.Error != nil {
				return fmt.Errorf("post to %s: %s: %s", jb.room, r.Error.Code, r.Error.Message)
			}
		}
		posted.Add(uint64(len(posts)))
		return nil
	})
	res.Messages, res.ChangedBytes = posted.Load(), changed.Load()
	if err != nil {
		return fmt.Errorf("fill stopped after %d messages: %w", res.Messages, err)
	}
	return nil
}

// historyJob is one post_batch of the fill.
type historyJob struct {
	room  string
	first int // index of the job's first message in its room
	n     int
}

// chatText is a few hundred message bodies of about size bytes, made of
// words, so that compression meets what chat text gives it.
func chatText(size int) [][]byte {
	words := strings.Fields("the a to and is it you that in of for on this with be are we have at can not will just do so if what but all about when get your from our now up out there meeting today ship deploy fix review tomorrow thanks ok sounds good see link build test release room thread message please check later lunch call done issue merged")
	r := rand.New(rand.NewPCG(1, 2))
	out := make([][]byte, 512)
	for i := range out {
		var b []byte
		for len(b) < size {
			if len(b) > 0 {
				b = append(b, ' ')
			}
			b = append(b, words[r.IntN(len(words))]...)
		}
		out[i] = b[:size]
	}
	return out
}

// checkpointPast posts into room until replica 0's durable checkpoint is
// past op target (bounded: a minute).
func (s *System) checkpointPast(ctx context.Context, target uint64, room string) error {
	deadline := time.Now().Add(time.Minute)
	for i := 0; time.Now().Before(deadline); i++ {
		if sts, err := s.cluster.Status(0); err == nil && len(sts) > 0 && sts[0].CheckpointOp >= target {
			return nil
		}
		if _, err := s.admin.post(ctx, room, "tail-"+strconv.Itoa(i), []byte("tail")); err != nil {
			return err
		}
	}
	return fmt.Errorf("no checkpoint past op %d within a minute", target)
}

func (s *System) commit(replica int) uint64 {
	sts, err := s.cluster.Status(replica)
	if err != nil || len(sts) == 0 {
		return 0
	}
	return sts[0].CommitMin
}

func (s *System) gridWritten(replica int) uint64 {
	sts, err := s.cluster.Status(replica)
	if err != nil || len(sts) == 0 {
		return 0
	}
	return sts[0].Storage.Grid.BytesWritten
}

// gridKindsWritten is the grid bytes replica wrote so far, by block kind.
func (s *System) gridKindsWritten(replica int) (out [grid.KindCount]uint64) {
	if sts, err := s.cluster.Status(replica); err == nil && len(sts) > 0 {
		out = sts[0].Storage.Grid.KindBytesWritten
	}
	return out
}

// diskBytes is the bytes allocated by each replica's data files.
func (s *System) diskBytes() ([]uint64, error) {
	out := make([]uint64, replicaCount)
	for i := range replicaCount {
		err := filepath.Walk(s.cluster.DataDir(i), func(path string, info os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			if st, ok := info.Sys().(*syscall.Stat_t); ok && info.Mode().IsRegular() {
				out[i] += uint64(st.Blocks) * 512
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// rss is a process's resident memory in bytes (0 if unknown).
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// pages reads Pages random 50-message pages of room through the edge's
// REST API, then the same pages again: the first pass finds most blocks
// outside the block cache (the data is far larger), the second inside.
// A page's time runs from the request to its response's last byte, as an
// HTTP load tool times it; the page is checked after.
func (s *System) pages(ctx context.Context, o HistoryOptions, room string, res *HistoryResult) error {
	tok, err := s.token(publisher)
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(3, 4))
	top := max(o.BigRoomMessages-pageMessages, 1)
	starts := make([]int, o.Pages)
	for i := range starts {
		starts[i] = 1 + r.IntN(top)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	var body bytes.Buffer
	read := func() ([]float64, error) {
		var ms []float64
		for _, from := range starts {
			url := fmt.Sprintf("http://%s/v1/rooms/%s/messages?from=%d&limit=%d", s.edgeAddr, room, from, pageMessages)
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				return nil, err
			}
			// The clock stops at the page's last byte; checking the page
			// (decoding its JSON) is the client's work, after it.
			body.Reset()
			_, err = body.ReadFrom(resp.Body)
			resp.Body.Close()
			ms = append(ms, float64(time.Since(t0).Microseconds())/1000)
			var page struct {
				Messages []json.RawMessage `json:"messages"`
			}
			if err == nil {
				err = json.Unmarshal(body.Bytes(), &page)
			}
			if err != nil || resp.StatusCode != 200 || len(page.Messages) != pageMessages {
				res.PageErrors++
			}
		}
		slices.Sort(ms)
		return ms, nil
	}
	primary := s.primary()
	hits0, misses0 := s.cacheCounts(primary)
	cold, err := read()
	if err != nil {
		return err
	}
	hits1, misses1 := s.cacheCounts(primary)
	profiled := make(chan struct{})
	go func() {
		defer close(profiled)
		s.Profile(ctx, "history-warm", 3*time.Second) // no-op without Options.PprofDir
	}()
	warm, err := read()
	<-profiled
	if err != nil {
		return err
	}
	hits2, misses2 := s.cacheCounts(primary)
	if primary >= 0 && primary == s.primary() {
		res.ColdCacheHitRatio = hitRatio(hits1-hits0, misses1-misses0)
		res.WarmCacheHitRatio = hitRatio(hits2-hits1, misses2-misses1)
	}
	res.ColdPagesRead = len(cold)
	res.ColdPageP50Ms, res.ColdPageP99Ms = quantile(cold, 0.5), quantile(cold, 0.99)
	res.WarmPageP50Ms, res.WarmPageP99Ms = quantile(warm, 0.5), quantile(warm, 0.99)
	return nil
}

func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(int(q*float64(len(sorted))), len(sorted)-1)]
}

// syncWiped stops a backup, wipes and formats its data directory, starts
// it again, and times it until it has applied what the primary had
// committed (it can only get there by a block sync: its WAL is empty and
// the others' WAL windows have moved past the start).
func (s *System) syncWiped(ctx context.Context, room string, before []uint64, res *HistoryResult) error {
	primary, err := s.Leader(ctx, room)
	if err != nil {
		return err
	}
	victim := (primary + 1) % replicaCount
	res.SyncedReplica = victim
	s.replicas[victim].Kill()
	if err := os.RemoveAll(s.cluster.DataDir(victim)); err != nil {
		return err
	}
	out, err := exec.Command(s.o.Binary, "format", "-config", s.cluster.ConfigPath, "-replica", strconv.Itoa(victim),
		"-data", s.cluster.DataDir(victim)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("format: %v: %s", err, out)
	}
	target := s.commit(primary)
	res.SyncWaitedForOp = target
	t0 := time.Now()
	if err := procs.Restart(s.replicas, victim); err != nil {
		return err
	}
	var st node.Status
	if !load.Until(ctx, 30*time.Minute, 50*time.Millisecond, func() bool {
		sts, err := s.cluster.Status(victim)
		if err != nil || len(sts) == 0 {
			return false
		}
		st = sts[0]
		return st.CommitMin >= target && st.Status == "normal"
	}) {
		return fmt.Errorf("the wiped replica %d did not catch up to op %d", victim, target)
	}
	res.SyncSeconds = time.Since(t0).Seconds()
	res.SyncBlocks = st.Storage.Grid.Repaired
	disk, err := s.diskBytes()
	if err != nil {
		return err
	}
	res.SyncBytes = disk[victim] - min(disk[victim], before[victim])
	return nil
}

// primary is the replica whose /status says it is shard 0's primary, or
// -1 (the replicas are this harness's processes, not the cluster's).
func (s *System) primary() int {
	for i := range s.replicas {
		if sts, err := s.cluster.Status(i); err == nil && len(sts) > 0 && sts[0].Primary {
			return i
		}
	}
	return -1
}

// statusSettle is how long a harness waits for /status to count what
// just happened: its counters are refreshed every 64 ticks of 1 ms.
const statusSettle = 150 * time.Millisecond

// cacheCounts is replica i's block cache hits and misses on shard 0 (zero
// when i is not a replica or does not answer).
func (s *System) cacheCounts(i int) (hits, misses uint64) {
	if i < 0 {
		return 0, 0
	}
	time.Sleep(statusSettle)
	sts, err := s.cluster.Status(i)
	if err != nil || len(sts) == 0 {
		return 0, 0
	}
	g := sts[0].Storage.Grid
	return g.CacheHits, g.CacheMisses
}

func hitRatio(hits, misses uint64) float64 {
	return float64(hits) / float64(max(hits+misses, 1))
}
