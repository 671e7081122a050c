package main

import (
	"bufio"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"tigerchat/runtime/audit"
	"tigerchat/runtime/transport"
)

func init() {
	register("audit", "tail NODE [-n N] | tail -file FILE | tail -replicated | verify FILE --cert CERT [-replicated]: a node's audit log, and the replicated one", cmdAudit)
}

func cmdAudit(c *ctx, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("audit: want tail or verify: %w", errUsage)
	}
	switch args[0] {
	case "tail":
		return cmdAuditTail(c, args[1:])
	case "verify":
		return cmdAuditVerify(c, args[1:])
	}
	return fmt.Errorf("audit: unknown subcommand %q (want tail or verify): %w", args[0], errUsage)
}

func cmdAuditTail(c *ctx, args []string) error {
	n, file, replicated := 20, "", false
	pos, err := parse(c, "audit tail", args, -1, "NODE", func(fs *flag.FlagSet) {
		c.common.add(fs)
		fs.IntVar(&n, "n", n, "the last `N` entries")
		fs.StringVar(&file, "file", "", "read a local audit log `FILE` instead of asking NODE")
		fs.BoolVar(&replicated, "replicated", false, "the replicated audit log (every node's operator entries, committed through VSR) instead of a node's")
	})
	if err != nil {
		return err
	}
	if n < 1 {
		return fmt.Errorf("audit tail: -n must be positive: %w", errUsage)
	}
	if replicated {
		if file != "" || len(pos) != 0 {
			return fmt.Errorf("audit tail -replicated takes no NODE or -file: %w", errUsage)
		}
		return auditTailReplicated(c, n)
	}
	var entries []audit.Entry
	switch {
	case file != "" && len(pos) == 0:
		entries, err = audit.ReadFile(file)
		if err != nil && len(entries) == 0 {
			return err
		}
		entries = entries[max(0, len(entries)-n):]
	case file == "" && len(pos) == 1:
		cl, err := loadCluster(c)
		if err != nil {
			return err
		}
		i, err := replicaArg(cl, "audit tail", pos[0])
		if err != nil {
			return err
		}
		body, err := cl.adminDo(i, "GET", fmt.Sprintf("/audit?replica=%d&n=%d", i, n))
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(strings.NewReader(body))
		sc.Buffer(make([]byte, 4096), 1<<20)
		for sc.Scan() {
			var e audit.Entry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				return fmt.Errorf("audit tail: malformed entry from replica %d: %w", i, err)
			}
			entries = append(entries, e)
		}
	default:
		return fmt.Errorf("audit tail: give NODE or -file FILE: %w", errUsage)
	}
	if c.common.json {
		return printJSON(c.stdout, entries)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tACTION\tARGS\tOUTCOME\tVIEWS")
	for _, e := range entries {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%v\n", e.Seq, time.Unix(0, e.TimeNs).UTC().Format(time.RFC3339), orDash(e.Actor), e.Action,
			formatArgs(e.Args, e.Details), orDash(e.Outcome), e.Views)
	}
	return tw.Flush()
}

func auditTailReplicated(c *ctx, n int) error {
	rep, err := fetchReplicated(c)
	if err != nil {
		return err
	}
	rep = rep[max(0, len(rep)-n):]
	if c.common.json {
		return printJSON(c.stdout, rep)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROOM_SEQ\tTIME\tREPLICA\tSEQ\tACTOR\tACTION\tARGS\tOUTCOME\tVIEWS")
	for _, e := range rep {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%v\n", e.RoomSeq, time.Unix(0, e.TimeNs).UTC().Format(time.RFC3339), e.Replica, e.Seq,
			orDash(e.Actor), e.Action, formatArgs(e.Args, nil), orDash(e.Outcome), e.Views)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func formatArgs(args, details map[string]string) string {
	var parts []string
	for _, m := range []map[string]string{args, details} {
		for k, v := range m {
			parts = append(parts, k+"="+v)
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	sortStrings(parts)
	return strings.Join(parts, " ")
}

// certList collects repeated -cert flags.
type certList []string

func (l *certList) String() string     { return strings.Join(*l, ",") }
func (l *certList) Set(v string) error { *l = append(*l, v); return nil }

type verifyResult struct {
	File     string   `json:"file"`
	Entries  int      `json:"entries"`
	Node     string   `json:"node"`               // the signer's certificate fingerprint
	Pinned   string   `json:"pinned,omitempty"`   // "replicas[N]" when the config pins it
	Verified bool     `json:"verified"`           // sequence, chain and every signature
	Error    string   `json:"error,omitempty"`    // why not
	Findings []string `json:"findings,omitempty"` // deletions and repairs the log records
	// Replicated: the comparison with the replicated audit log (-replicated).
	Replicated *replicatedResult `json:"replicated,omitempty"`
}

func cmdAuditVerify(c *ctx, args []string) error {
	var certs certList
	replicated := false
	pos, err := parse(c, "audit verify", args, 1, "FILE", func(fs *flag.FlagSet) {
		c.common.add(fs)
		fs.Var(&certs, "cert", "PEM `FILE` holding the node's certificate (repeatable; an identity file works too, only its certificate is read)")
		fs.BoolVar(&replicated, "replicated", false, "also compare the log with the replicated audit log (needs -config and an operator -identity or -token)")
	})
	if err != nil {
		return err
	}
	if len(certs) == 0 {
		return fmt.Errorf("audit verify: --cert FILE is required (the node's certificate: tigerctl cert -identity NODE.pem): %w", errUsage)
	}
	pubs := map[string]ed25519.PublicKey{}
	for _, f := range certs {
		if err := readCerts(f, pubs); err != nil {
			return err
		}
	}
	file := pos[0]
	res := verifyResult{File: filepath.Base(file)}
	entries, rerr := audit.ReadFile(file)
	res.Entries = len(entries)
	var trouble error
	switch {
	case rerr != nil && len(entries) == 0 && errors.Is(rerr, os.ErrNotExist):
		return rerr
	case len(entries) == 0:
		trouble = fmt.Errorf("no entries in %s: %v", file, rerr)
	default:
		res.Node = entries[0].Node
		pub, ok := pubs[res.Node]
		if !ok {
			trouble = fmt.Errorf("the log is signed by %s…, none of the --cert certificates", res.Node[:min(16, len(res.Node))])
			break
		}
		if cl, err := loadCluster(c); err == nil {
			for i, m := range cl.cfg.Replicas {
				if m.Fingerprint == res.Node {
					res.Pinned = fmt.Sprintf("replicas[%d]", i)
				}
			}
		}
		if err := audit.Verify(entries, pub); err != nil {
			trouble = err
			break
		}
		res.Verified = true
		var head *audit.Head
		if h, err := audit.ReadHead(audit.HeadPath(file), pub); err == nil {
			head = &h
		}
		for _, f := range audit.Findings(entries, head) {
			res.Findings = append(res.Findings, f.Message)
		}
		if rerr != nil {
			res.Findings = append(res.Findings, rerr.Error())
		}
		if replicated {
			rep, err := fetchReplicated(c)
			if err != nil {
				return err
			}
			r := compareReplicated(entries, res.Node, rep)
			res.Replicated = &r
			res.Findings = append(res.Findings, r.Findings...)
		}
	}
	if trouble != nil {
		res.Error = trouble.Error()
	}
	if c.common.json {
		if err := printJSON(c.stdout, res); err != nil {
			return err
		}
	} else if res.Verified {
		fmt.Fprintf(c.stdout, "audit log %s: %d entries, chain and signatures verify (signer %.16s…%s)\n", res.File, res.Entries, res.Node, pinnedNote(res.Pinned))
		if r := res.Replicated; r != nil {
			fmt.Fprintf(c.stdout, "replicated audit log: %d entries of this node, %d found unchanged in the local log; %d local operator entries not replicated\n",
				r.Entries, r.Matched, r.NotReplicated)
		}
		for _, f := range res.Findings {
			fmt.Fprintf(c.stdout, "  finding: %s\n", f)
		}
	}
	switch {
	case trouble != nil:
		return fmt.Errorf("audit log %s does not verify: %v", res.File, trouble)
	case len(res.Findings) > 0:
		return fmt.Errorf("audit log %s verifies but records %d deletions or repairs: %w", res.File, len(res.Findings), errDegraded)
	}
	return nil
}

func pinnedNote(p string) string {
	if p == "" {
		return ""
	}
	return ", pinned as " + p
}

// readCerts adds the Ed25519 keys of every certificate in a PEM file.
func readCerts(path string, pubs map[string]ed25519.PublicKey) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read certificate: %w", err)
	}
	found := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		pub, ok := cert.PublicKey.(ed25519.PublicKey)
		if !ok {
			return fmt.Errorf("%s: the certificate holds a %T key, want a node's Ed25519 key", path, cert.PublicKey)
		}
		pubs[transport.Fingerprint(cert)] = pub
		found++
	}
	if found == 0 {
		return fmt.Errorf("%s holds no PEM certificate", path)
	}
	return nil
}
