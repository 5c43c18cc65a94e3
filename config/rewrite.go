package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Rewrite sets top-level keys of the TOML file at path to the given values (TOML literals:
// `128`, `true`, `"50 99"`), for CONFIG REWRITE. A key the file has keeps its line, its
// indentation and its comment, with the new value; a key it lacks is added before the first
// table, unless it is in ifPresent (a default value: as Redis, only what differs from the
// defaults is added). Every other line is kept as it is. The file is replaced atomically (a temporary file
// beside it, synced, renamed over it) and only if the result is valid TOML; a missing file is
// created.
func Rewrite(path string, set map[string]string, ifPresent map[string]bool) error {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	mode := os.FileMode(0o644)
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	out := rewriteTOML(string(data), set, ifPresent)
	var check map[string]any
	if err := toml.Unmarshal([]byte(out), &check); err != nil {
		return fmt.Errorf("the rewritten file would not be valid TOML: %w", err)
	}
	return writeAtomic(path, []byte(out), mode)
}

// keyLine matches a line setting a key: its indentation, the key and the rest after "=".
var keyLine = regexp.MustCompile(`^(\s*)([A-Za-z0-9_-]+)\s*=(.*)$`)

// rewriteTOML is Rewrite on the file's text.
func rewriteTOML(text string, set map[string]string, ifPresent map[string]bool) string {
	lines := strings.Split(text, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1] // the final newline
	}
	firstTable := len(lines)
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "[") {
			firstTable = i
			break
		}
	}
	done := map[string]bool{}
	for i, l := range lines[:firstTable] {
		m := keyLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		v, ok := set[m[2]]
		if !ok || done[m[2]] {
			continue
		}
		done[m[2]] = true
		line := m[1] + m[2] + " = " + v
		if comment := trailingComment(m[3]); comment != "" {
			line += "  " + comment
		}
		lines[i] = line
	}
	var added []string
	for k, v := range set {
		if !done[k] && !ifPresent[k] {
			added = append(added, k+" = "+v)
		}
	}
	sort.Strings(added)
	if len(added) > 0 {
		if firstTable < len(lines) {
			added = append(added, "")
		}
		lines = append(lines[:firstTable], append(added, lines[firstTable:]...)...)
	}
	return strings.Join(lines, "\n") + "\n"
}

// trailingComment returns the comment after a value ("# …"), skipping a "#" inside a quoted
// string, or "".
func trailingComment(rest string) string {
	var quote byte
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#':
			return rest[i:]
		}
	}
	return ""
}

// writeAtomic replaces path with data: written to a temporary file in the same directory,
// synced, then renamed over path, so that a crash leaves the old file or the new one.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".vela-config-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename it no longer exists
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
