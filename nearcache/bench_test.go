package nearcache

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkGet measures a hit and a miss: the near cache's whole cost on a GET it answers.
func BenchmarkGet(b *testing.B) {
	c, err := New(100000, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.Resume()
	keys := make([][]byte, 100000)
	for i := range keys {
		keys[i] = []byte("key:" + strconv.Itoa(i))
		c.Fill(keys[i], c.Begin(keys[i]), []byte("value"), 0)
	}
	b.Run("hit", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, ok := c.Get(keys[i%len(keys)]); !ok {
				b.Fatal("miss")
			}
		}
	})
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		k := []byte("absent")
		for b.Loop() {
			if _, ok := c.Get(k); ok {
				b.Fatal("hit")
			}
		}
	})
	b.Run("invalidate", func(b *testing.B) {
		b.ReportAllocs()
		k := []byte("absent")
		for b.Loop() {
			c.Invalidate(k)
		}
	})
}
