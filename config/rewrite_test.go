package config

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRewriteTOML: a key the file has gets its new value on its own line, indentation and
// comment kept (a "#" inside a string is not a comment); a missing key is added before the
// first table unless it is only to be updated; tables and other lines are untouched.
func TestRewriteTOML(t *testing.T) {
	in := `# Vela
  slowlog_max_len = 128     # entries kept
latency_tracking_info_percentiles = "50 # 99"   # odd but valid

[store]
type = "memory"
slowlog_max_len = 5
`
	got := rewriteTOML(in, map[string]string{
		"slowlog_max_len":                   "77",
		"latency_tracking_info_percentiles": `"50 99"`,
		"max_clients":                       "500",
		"latency_tracking":                  "true",
	}, map[string]bool{"latency_tracking": true})
	want := `# Vela
  slowlog_max_len = 77  # entries kept
latency_tracking_info_percentiles = "50 99"  # odd but valid

max_clients = 500

[store]
type = "memory"
slowlog_max_len = 5
`
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	if got := rewriteTOML("", map[string]string{"max_clients": "9"}, nil); got != "max_clients = 9\n" {
		t.Fatalf("empty file: %q", got)
	}
}

// TestRewriteFile: Rewrite replaces the file, keeping its mode, and the result loads; a result
// that would not be TOML (a key spelled twice) leaves the file as it was.
func TestRewriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vela.toml")
	if err := os.WriteFile(path, []byte("slowlog_max_len = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Rewrite(path, map[string]string{"slowlog_max_len": "64", "max_clients": "77"}, nil); err != nil {
		t.Fatal(err)
	}
	c, err := Load([]string{"-config", path}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.SlowlogMaxLen != 64 || c.MaxClients != 77 || c.File != path {
		t.Fatalf("loaded %d, %d from %q", c.SlowlogMaxLen, c.MaxClients, c.File)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	before, _ := os.ReadFile(path)
	if err := os.WriteFile(path, append(before, []byte(`"max_clients" = 5`+"\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ = os.ReadFile(path)
	if err := Rewrite(path, map[string]string{"max_clients": "6"}, nil); err == nil {
		t.Fatal("a rewrite giving a key twice succeeded")
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatalf("the file changed: %s", after)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}
