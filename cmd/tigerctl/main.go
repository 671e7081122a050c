// Command tigerctl is the operator's tool.
//
//	tigerctl status -http ADDR                       shard replicas of a node (or of a dev cluster)
//	tigerctl drain -http ADDR [-replica N]           move every primary off a node and keep it off
//	tigerctl undrain -http ADDR [-replica N]         let it serve as primary again
//	tigerctl verify-audit -log FILE -identity FILE   check an audit log's chain and signatures
//	tigerctl verify-data -data DIR -size BYTES [-encrypted]   find rotten sectors without the key
//
// Drain and undrain are recorded in the node's signed audit log.
package main

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"tigerchat/runtime/audit"
	"tigerchat/runtime/disk"
	"tigerchat/runtime/node"
	"tigerchat/runtime/transport"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

var errUsage = errors.New("usage: tigerctl status|drain|undrain|verify-audit|verify-data [flags] (see the package doc)")

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "tigerctl:", errUsage)
		return 2
	}
	var err error
	switch args[0] {
	case "status":
		err = cmdStatus(args[1:], stdout)
	case "drain":
		err = cmdDrain(args[1:], stdout, true)
	case "undrain":
		err = cmdDrain(args[1:], stdout, false)
	case "verify-audit":
		err = cmdVerifyAudit(args[1:], stdout)
	case "verify-data":
		err = cmdVerifyData(args[1:], stdout)
	default:
		err = errUsage
	}
	if err != nil {
		fmt.Fprintln(stderr, "tigerctl:", err)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

func flags(name string, args []string, define func(fs *flag.FlagSet)) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	define(fs)
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%s: %v: %w", name, err, errUsage)
	}
	return nil
}

func getStatus(addr string) ([][]node.Status, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/status")
	if err != nil {
		return nil, fmt.Errorf("reach %s: %w (is the node running with -http?)", addr, err)
	}
	defer resp.Body.Close()
	var all [][]node.Status
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		return nil, fmt.Errorf("status from %s: %w", addr, err)
	}
	return all, nil
}

func cmdStatus(args []string, stdout io.Writer) error {
	var addr string
	if err := flags("status", args, func(fs *flag.FlagSet) { fs.StringVar(&addr, "http", "127.0.0.1:8080", "node `ADDR`") }); err != nil {
		return err
	}
	all, err := getStatus(addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%-5s %-6s %-12s %6s %-8s %10s %10s %10s %s\n", "node", "shard", "status", "view", "primary", "op", "commit", "applied", "drained")
	for i, sts := range all {
		for _, s := range sts {
			fmt.Fprintf(stdout, "%-5d %-6d %-12s %6d %-8v %10d %10d %10d %v\n", i, s.Shard, s.Status, s.View, s.Primary, s.Op, s.CommitMax, s.CommitMin, s.Drained)
		}
	}
	return nil
}

func cmdDrain(args []string, stdout io.Writer, drained bool) error {
	var addr string
	replica := -1
	name := map[bool]string{true: "drain", false: "undrain"}[drained]
	if err := flags(name, args, func(fs *flag.FlagSet) {
		fs.StringVar(&addr, "http", "127.0.0.1:8080", "node `ADDR`")
		fs.IntVar(&replica, "replica", -1, "in a process hosting several nodes (tigerchat dev): node `INDEX`")
	}); err != nil {
		return err
	}
	u := "http://" + addr + "/" + name
	if replica >= 0 {
		u += "?replica=" + url.QueryEscape(fmt.Sprint(replica))
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Post(u, "text/plain", nil)
	if err != nil {
		return fmt.Errorf("reach %s: %w", addr, err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s refused: %s", name, body)
	}
	if !drained {
		fmt.Fprintln(stdout, "undrained")
		return nil
	}
	// Wait (bounded) until no shard replica on the drained node is primary.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		all, err := getStatus(addr)
		if err != nil {
			return err
		}
		if stillPrimary(all, replica) == 0 {
			fmt.Fprintln(stdout, "drained: no shard has its primary on the node")
			return nil
		}
	}
	return errors.New("drain requested, but a shard still has its primary on the node after 10 s")
}

func stillPrimary(all [][]node.Status, replica int) int {
	n := 0
	for i, sts := range all {
		if replica >= 0 && i != replica {
			continue
		}
		for _, s := range sts {
			if s.Primary {
				n++
			}
		}
	}
	return n
}

func cmdVerifyAudit(args []string, stdout io.Writer) error {
	var logPath, idPath string
	if err := flags("verify-audit", args, func(fs *flag.FlagSet) {
		fs.StringVar(&logPath, "log", "", "audit log `FILE` (DATA_DIR/audit.jsonl)")
		fs.StringVar(&idPath, "identity", "", "the node's identity `FILE` (its certificate's key verifies)")
	}); err != nil {
		return err
	}
	if logPath == "" || idPath == "" {
		return fmt.Errorf("verify-audit: -log and -identity are required: %w", errUsage)
	}
	data, err := os.ReadFile(idPath)
	if err != nil {
		return err
	}
	id, err := transport.ParseIdentityPEM(data)
	if err != nil {
		return err
	}
	entries, err := audit.ReadFile(logPath)
	if err != nil {
		return err
	}
	if err := audit.Verify(entries, id.PrivateKey.Public().(ed25519.PublicKey)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "audit log %s: %d entries, chain and signatures verify\n", filepath.Base(logPath), len(entries))
	return nil
}

func cmdVerifyData(args []string, stdout io.Writer) error {
	var dir string
	var size uint64
	var encrypted bool
	if err := flags("verify-data", args, func(fs *flag.FlagSet) {
		fs.StringVar(&dir, "data", "", "data `DIR`")
		fs.Uint64Var(&size, "size", 0, "logical size of each data file in `BYTES` (from the config's layout)")
		fs.BoolVar(&encrypted, "encrypted", false, "the files are encrypted (sectors carry CRCs)")
	}); err != nil {
		return err
	}
	files, _ := filepath.Glob(filepath.Join(dir, "shard-*.tigerchat"))
	if len(files) == 0 {
		return fmt.Errorf("no data files in %s", dir)
	}
	bad := 0
	for _, f := range files {
		sectors, err := disk.VerifyFile(f, size, encrypted)
		if err != nil {
			return err
		}
		bad += len(sectors)
		fmt.Fprintf(stdout, "%s: %d bad sectors\n", filepath.Base(f), len(sectors))
	}
	if bad > 0 {
		return fmt.Errorf("%d bad sectors (the replica repairs them from peers when it reads them)", bad)
	}
	return nil
}
