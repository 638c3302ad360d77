package backoff

import (
	"context"
	"testing"
	"time"
)

func TestCapped(t *testing.T) {
	tests := []struct {
		name     string
		min, max time.Duration
		want     []time.Duration
	}{
		{"doubles up to the cap", 100 * time.Millisecond, time.Second,
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}},
		{"cap not a power of two of min", 3 * time.Millisecond, 10 * time.Millisecond,
			[]time.Duration{3 * time.Millisecond, 6 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}},
		{"max below min is min", time.Second, time.Millisecond,
			[]time.Duration{time.Second, time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := Capped{Min: tt.min, Max: tt.max}
			for i, w := range tt.want {
				if got := b.Next(); got != w {
					t.Fatalf("wait %d = %s, want %s", i, got, w)
				}
			}
			b.Reset()
			if got := b.Next(); got != tt.min {
				t.Fatalf("after Reset: %s, want %s", got, tt.min)
			}
		})
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep with a cancelled context reported a full wait")
	}
	if !Sleep(context.Background(), 0) {
		t.Fatal("Sleep(0) reported a cancelled wait")
	}
}
