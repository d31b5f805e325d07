package idp

import (
	"testing"
	"time"
)

func TestThrottleWindowAndGrowth(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := newThrottle(10*time.Minute, time.Minute, 4*time.Minute)
	// Failures spread beyond the window do not add up.
	th.fail("k", 3, now)
	th.fail("k", 3, now.Add(6*time.Minute))
	if th.fail("k", 3, now.Add(11*time.Minute)) {
		t.Fatal("a failure outside the window counted")
	}
	if locked, _ := th.locked("k", now.Add(11*time.Minute)); locked {
		t.Fatal("locked too early")
	}
	now = now.Add(30 * time.Minute)                                                         // the earlier failures have left the window
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 4 * time.Minute} // doubles, capped
	for i, d := range want {
		var locked bool
		for range 3 {
			locked = th.fail("k", 3, now)
		}
		if !locked {
			t.Fatalf("lockout %d: third failure did not lock", i)
		}
		if l, until := th.locked("k", now); !l || until.Sub(now) != d {
			t.Fatalf("lockout %d lasts %v, want %v", i, until.Sub(now), d)
		}
		if l, _ := th.locked("k", now.Add(d)); l {
			t.Fatalf("lockout %d did not end after %v", i, d)
		}
		now = now.Add(d)
	}
	// A day without lockouts resets the growth.
	now = now.Add(25 * time.Hour)
	for range 3 {
		th.fail("k", 3, now)
	}
	if _, until := th.locked("k", now); until.Sub(now) != time.Minute {
		t.Fatalf("growth not reset after a quiet day: %v", until.Sub(now))
	}
	// Reset forgets failures but keeps the lockout history.
	th.fail("j", 3, now)
	th.fail("j", 3, now)
	th.reset("j")
	if th.fail("j", 3, now) {
		t.Fatal("reset did not forget failures")
	}
	if locked, _ := th.locked("other", now); locked {
		t.Fatal("unrelated key locked")
	}
}
