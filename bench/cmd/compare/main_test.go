package main

import (
	"io"
	"testing"
)

func TestParseSystems(t *testing.T) {
	o, _, _, err := parse([]string{"-systems", "tigerchat,nats-js", "-scenarios", "publish"}, io.Discard)
	if err != nil || len(o.Systems) != 2 || o.Systems[1] != "nats-js" {
		t.Fatalf("%+v %v", o.Systems, err)
	}
	for _, bad := range [][]string{{"-systems", "kafka"}, {"-scenarios", "x"}} {
		if _, _, _, err := parse(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
