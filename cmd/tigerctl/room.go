package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"tigerchat/model/chat"
	"tigerchat/model/placement"
	"tigerchat/model/vsr"
	"tigerchat/runtime/client"
	"tigerchat/runtime/transport"
)

func init() {
	register("verify-room", "ROOM --tenant T --user U -client-identity FILE [-thread N]: check the room's hash chain from its oldest held seq to its head", cmdVerifyRoom)
	register("export", "ROOM --tenant T --user U -client-identity FILE [-thread N] [-out FILE]: write the room's history as JSON Lines", cmdExport)
}

// roomFlags are what verify-room and export share: which log, read as
// which user, through which pinned client identity.
type roomFlags struct {
	tenant, user, identity string
	thread                 uint64
}

func (f *roomFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&f.tenant, "tenant", "", "the room's `TENANT`")
	fs.StringVar(&f.user, "user", "", "read as `USER` (any user of the tenant for a public room, a member for a private one)")
	fs.StringVar(&f.identity, "client-identity", os.Getenv("TIGERCTL_CLIENT_IDENTITY"), "a client identity `FILE` pinned in the config's edges (tigerchat keygen)")
	fs.Uint64Var(&f.thread, "thread", 0, "the thread under main-log seq `N` (0: the main log)")
}

// walkRoom reads log (tenant, room, thread) page by page from its oldest
// held seq to its head, as it is when each page is read, and calls each
// for every message in seq order. It returns the first seq held and the
// head it reached.
func walkRoom(c *ctx, cmd string, f *roomFlags, room string, each func(*chat.Message) error) (first, head uint64, err error) {
	if f.tenant == "" || f.user == "" || f.identity == "" {
		return 0, 0, fmt.Errorf("%s: --tenant, --user and -client-identity are required: %w", cmd, errUsage)
	}
	cl, err := loadCluster(c)
	if err != nil {
		return 0, 0, err
	}
	pem, err := os.ReadFile(f.identity)
	if err != nil {
		return 0, 0, err
	}
	id, err := transport.ParseIdentityPEM(pem)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", f.identity, err)
	}
	cc, err := client.Dial(cl.cfg, client.Options{Identity: id, SessionsPerShard: 1})
	if err != nil {
		return 0, 0, err
	}
	defer cc.Close()
	shard := placement.Shard(f.tenant, room, cl.cfg.Shards)
	for next := uint64(1); ; {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		q := chat.ReadRequest{Tenant: f.tenant, User: f.user, Room: room, Thread: f.thread, Seq: next, Limit: chat.ReadLimitMax}
		r, err := cc.Do(ctx, shard, chat.OperationReadRange, chat.EncodeRead(q))
		cancel()
		if err != nil {
			return first, head, fmt.Errorf("read from seq %d: %w", next, err)
		}
		if r.Flags != vsr.ReplyOk {
			return first, head, fmt.Errorf("read from seq %d refused: %s", next, r.Body)
		}
		v, err := chat.DecodeReadReply(r.Body)
		if err != nil {
			return first, head, err
		}
		if v.Code != chat.CodeOK {
			return first, head, fmt.Errorf("read from seq %d: %s", next, v.Code)
		}
		if next == 1 {
			first = v.Log.FirstSeq
		}
		head = v.Log.HeadSeq
		for i := range v.Log.Messages {
			if err := each(&v.Log.Messages[i]); err != nil {
				return first, head, err
			}
			next = v.Log.Messages[i].Seq + 1
		}
		if !v.Log.More || len(v.Log.Messages) == 0 {
			return first, head, nil
		}
	}
}

type verifyRoomResult struct {
	Tenant   string `json:"tenant"`
	Room     string `json:"room"`
	Thread   uint64 `json:"thread"`
	FirstSeq uint64 `json:"first_seq"`
	HeadSeq  uint64 `json:"head_seq"`
	Verified uint64 `json:"verified"`
	HeadHash string `json:"head_hash"`
	Error    string `json:"error,omitempty"`
}

func cmdVerifyRoom(c *ctx, args []string) error {
	var f roomFlags
	pos, err := parse(c, "verify-room", args, 1, "ROOM", func(fs *flag.FlagSet) {
		c.common.add(fs)
		f.add(fs)
	})
	if err != nil {
		return err
	}
	res := verifyRoomResult{Tenant: f.tenant, Room: pos[0], Thread: f.thread}
	var prev *chat.Message
	var chainErr error
	first, head, err := walkRoom(c, "verify-room", &f, pos[0], func(m *chat.Message) error {
		run := []chat.Message{*m}
		if prev != nil {
			run = []chat.Message{*prev, *m}
		}
		if err := chat.VerifyChain(run); err != nil {
			chainErr = err
			return err
		}
		p := *m
		prev = &p
		res.Verified++
		return nil
	})
	res.FirstSeq, res.HeadSeq = first, head
	if prev != nil {
		res.HeadHash = hex.EncodeToString(prev.Hash[:])
	}
	if err != nil && chainErr == nil {
		return err
	}
	if err == nil && prev != nil && prev.Seq != head {
		chainErr = fmt.Errorf("the walk ended at seq %d below the head %d", prev.Seq, head)
	}
	if chainErr != nil {
		res.Error = chainErr.Error()
	}
	if c.common.json {
		if err := printJSON(c.stdout, res); err != nil {
			return err
		}
	} else if chainErr == nil {
		fmt.Fprintf(c.stdout, "room %s (tenant %s, thread %d): seqs %d..%d verify (%d messages), head hash %s\n",
			res.Room, res.Tenant, res.Thread, res.FirstSeq, res.HeadSeq, res.Verified, res.HeadHash)
	}
	if chainErr != nil {
		return fmt.Errorf("room %s: hash chain broken after %d verified messages: %v: %w", res.Room, res.Verified, chainErr, errDegraded)
	}
	return nil
}

// exportLine is one message of an export: the message object of
// docs/protocol.md (body as a string, or body_b64 when not UTF-8).
type exportLine struct {
	Tenant   string `json:"tenant"`
	Room     string `json:"room"`
	Thread   uint64 `json:"thread"`
	Seq      uint64 `json:"seq"`
	Hash     string `json:"hash"`
	PrevHash string `json:"prev_hash"`
	Author   string `json:"author"`
	TimeNs   string `json:"time_ns"`
	Key      string `json:"key"`
	Body     []byte `json:"body_b64"`
}

func cmdExport(c *ctx, args []string) error {
	var f roomFlags
	var out string
	pos, err := parse(c, "export", args, 1, "ROOM", func(fs *flag.FlagSet) {
		c.common.add(fs)
		f.add(fs)
		fs.StringVar(&out, "out", "", "write to `FILE` (default: standard output)")
	})
	if err != nil {
		return err
	}
	var w io.Writer = c.stdout
	if out != "" {
		file, err := os.Create(out)
		if err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	n := 0
	_, _, err = walkRoom(c, "export", &f, pos[0], func(m *chat.Message) error {
		n++
		return enc.Encode(exportLine{
			Tenant: m.Tenant, Room: m.Room, Thread: m.Thread, Seq: m.Seq,
			Hash: hex.EncodeToString(m.Hash[:]), PrevHash: hex.EncodeToString(m.PrevHash[:]),
			Author: m.Author, TimeNs: strconv.FormatInt(m.TimeNs, 10), Key: m.Key, Body: m.Body,
		})
	})
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	if out != "" {
		fmt.Fprintf(c.stderr, "exported %d messages to %s\n", n, out)
	}
	return nil
}
