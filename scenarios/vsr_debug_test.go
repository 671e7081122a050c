package scenarios

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestVSRDebug prints a transcript of one seed: VSR_DEBUG_SEED=5 [VSR_DEBUG_TICKS=N] go test -run TestVSRDebug ./scenarios/
func TestVSRDebug(t *testing.T) {
	seedText := os.Getenv("VSR_DEBUG_SEED")
	if seedText == "" {
		t.Skip("set VSR_DEBUG_SEED")
	}
	seed, _ := strconv.ParseUint(seedText, 10, 64)
	cfg := SwarmConfig(seed)
	cfg.Subject = "vsr"
	if ticks, err := strconv.ParseUint(os.Getenv("VSR_DEBUG_TICKS"), 10, 64); err == nil {
		cfg.Ticks = ticks // as a nightly failure's -ticks gives it
	}
	skip := map[string]bool{"recv_prepare": true, "recv_prepare_ok": true, "prepare": true, "recv_request": true, "recv_commit": true, "repair_request": true, "recv_request_prepare": true}
	vsrDebug = func(i int, line string) {
		fmt.Println(i, line)
		if os.Getenv("VSR_DEBUG_LOG") != "" && strings.Contains(line, os.Getenv("VSR_DEBUG_LOG")) {
			if s := debugSubject; s != nil && s.replicas[i] != nil {
				fmt.Println(s.replicas[i].DebugLog())
			}
		}
	}
	_ = skip
	defer func() { vsrDebug = nil }()
	res := Run(cfg)
	t.Logf("%s %+v", res.Line(), cfg)
}
