package main

import (
	"io"
	"slices"
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

// The curve runs on TigerChat and NATS by default; -curve-systems names
// must be systems compare knows.
func TestParseCurve(t *testing.T) {
	o, _, _, err := parse([]string{"-scenarios", "curve", "-curve-publishers", "1,64"}, io.Discard)
	if err != nil || !slices.Equal(o.Runs(), []string{"curve-1pub", "curve-64pub"}) || !slices.Equal(o.CurveSystems, []string{"tigerchat", "nats-js"}) {
		t.Fatalf("runs %v on %v: %v", o.Runs(), o.CurveSystems, err)
	}
	o, _, _, err = parse([]string{"-scenarios", "curve", "-curve-systems", "tigerchat,nats-js,centrifugo"}, io.Discard)
	if err != nil || len(o.CurveSystems) != 3 {
		t.Fatalf("%v %v", o.CurveSystems, err)
	}
	if _, _, _, err := parse([]string{"-scenarios", "curve", "-curve-systems", "tigerchat,kafka"}, io.Discard); err == nil {
		t.Error("-curve-systems kafka accepted")
	}
}
