package logs

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// matchGlob reports whether name matches pattern: path.Match per element,
// where an element "**" matches any number of elements (doublestar).
func matchGlob(pattern, name string) bool {
	return matchParts(strings.Split(filepath.ToSlash(pattern), "/"), strings.Split(filepath.ToSlash(name), "/"))
}

func matchParts(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for i := 0; i <= len(name); i++ {
				if matchParts(pat[1:], name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := path.Match(pat[0], name[0]); err != nil || !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// globFiles lists the paths matching pattern. Without "**" it is
// filepath.Glob; with it, the tree under the pattern's fixed prefix is
// walked.
func globFiles(pattern string, out []string) []string {
	if !strings.Contains(pattern, "**") {
		m, _ := filepath.Glob(pattern) // only ErrBadPattern, checked in Validate
		return append(out, m...)
	}
	parts := strings.Split(filepath.ToSlash(pattern), "/")
	base := []string{}
	for _, p := range parts {
		if strings.ContainsAny(p, `*?[\`) {
			break
		}
		base = append(base, p)
	}
	root := strings.Join(base, "/")
	if root == "" {
		root = "."
		if strings.HasPrefix(pattern, "/") {
			root = "/"
		}
	}
	_ = filepath.WalkDir(filepath.FromSlash(root), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable directories are skipped
		}
		if !d.IsDir() && matchGlob(pattern, p) {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// dirCache lists directories for globbing, re-reading one only when its
// modification time changed (or is too recent to trust, as file system
// timestamps can be coarser than the time between two changes). On a
// quiet node a poll then costs one stat per directory instead of an
// open, getdents and close.
type dirCache struct {
	dirs map[string]*cachedDir
	gen  uint64
}

type cachedDir struct {
	mtime int64
	names []string
	isDir []bool
	seen  uint64
}

// trustAfter is how old a directory's mtime must be before its cached
// listing is reused.
const trustAfter = 2 * time.Second

func newDirCache() *dirCache { return &dirCache{dirs: map[string]*cachedDir{}} }

func (c *dirCache) list(dir string, now time.Time) *cachedDir {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		delete(c.dirs, dir)
		return nil
	}
	mt := fi.ModTime()
	if e := c.dirs[dir]; e != nil && e.mtime == mt.UnixNano() && now.Sub(mt) > trustAfter {
		e.seen = c.gen
		return e
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		delete(c.dirs, dir)
		return nil
	}
	e := &cachedDir{mtime: mt.UnixNano(), names: make([]string, len(des)), isDir: make([]bool, len(des)), seen: c.gen}
	for i, de := range des {
		e.names[i] = de.Name()
		switch {
		case de.IsDir():
			e.isDir[i] = true
		case de.Type()&fs.ModeSymlink != 0:
			if st, err := os.Stat(filepath.Join(dir, de.Name())); err == nil && st.IsDir() {
				e.isDir[i] = true
			}
		}
	}
	c.dirs[dir] = e
	return e
}

func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// glob appends the paths matching pattern, like filepath.Glob (patterns
// with "**" are walked by globFiles).
func (c *dirCache) glob(pattern string, now time.Time, out []string) []string {
	if strings.Contains(pattern, "**") {
		return globFiles(pattern, out)
	}
	parts := strings.Split(filepath.ToSlash(pattern), "/")
	i := 0
	for i < len(parts) && !hasMeta(parts[i]) {
		i++
	}
	if i == len(parts) {
		return append(out, pattern) // no meta: the file itself (stat decides)
	}
	base := strings.Join(parts[:i], "/")
	switch {
	case base == "" && strings.HasPrefix(pattern, "/"):
		base = "/"
	case base == "":
		base = "."
	}
	cur := []string{filepath.FromSlash(base)}
	for j, seg := range parts[i:] {
		last := i+j == len(parts)-1
		var next []string
		for _, d := range cur {
			if !hasMeta(seg) {
				p := filepath.Join(d, seg)
				if last {
					out = append(out, p)
				} else {
					next = append(next, p)
				}
				continue
			}
			e := c.list(d, now)
			if e == nil {
				continue
			}
			for k, n := range e.names {
				if ok, _ := path.Match(seg, n); !ok {
					continue
				}
				switch {
				case last:
					out = append(out, filepath.Join(d, n))
				case e.isDir[k]:
					next = append(next, filepath.Join(d, n))
				}
			}
		}
		cur = next
	}
	return out
}

// prune forgets directories not listed for a while.
func (c *dirCache) prune() {
	c.gen++
	for d, e := range c.dirs {
		if c.gen-e.seen > 16 {
			delete(c.dirs, d)
		}
	}
}
